using System.Buffers;
using System.Buffers.Binary;
using MessagePack;
using MessagePack.Formatters;

namespace Ferret.Core.Packets;

/// <summary>
/// Seed indices as one MessagePack <c>bin</c> of little-endian uint16 values: 2 bytes per index (K is at most
/// 65,536), half what MessagePack integers take past 127.
/// </summary>
public sealed class RawUInt16IndexFormatter : IMessagePackFormatter<int[]?>
{
    public void Serialize(ref MessagePackWriter writer, int[]? value, MessagePackSerializerOptions options)
    {
        if (value is null)
        {
            writer.WriteNil();
            return;
        }
        var bytes = new byte[2 * value.Length];
        for (int i = 0; i < value.Length; i++)
        {
            if ((uint)value[i] > ushort.MaxValue)
                throw new MessagePackSerializationException($"Seed index {value[i]} does not fit the wire's 16 bits.");
            BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(2 * i), (ushort)value[i]);
        }
        writer.Write(bytes);
    }

    public int[]? Deserialize(ref MessagePackReader reader, MessagePackSerializerOptions options)
    {
        if (reader.TryReadNil())
            return null;
        var seq = reader.ReadBytes() ?? throw new MessagePackSerializationException("Expected a uint16 bin payload.");
        if (seq.Length % 2 != 0)
            throw new MessagePackSerializationException($"A uint16 payload of {seq.Length} bytes is not a whole number of values.");
        var bytes = seq.ToArray();
        var values = new int[bytes.Length / 2];
        for (int i = 0; i < values.Length; i++)
            values[i] = BinaryPrimitives.ReadUInt16LittleEndian(bytes.AsSpan(2 * i));
        return values;
    }
}

/// <summary>
/// Block ids, which come sorted in runs (one run per block), as (id, count) pairs: a few bytes per block
/// instead of one integer per seed. Decoding expands at most <see cref="BoundedWireOptions.MaxDecodedElements"/>
/// values (the experiment's shape), or <see cref="DefaultMaxLength"/> without a bound.
/// </summary>
public sealed class RunLengthInt32Formatter : IMessagePackFormatter<int[]?>
{
    /// <summary>The expansion allowed when the options carry no experiment bound (trusted data: the coordinator's own updates).</summary>
    public const int DefaultMaxLength = 1 << 26;

    public void Serialize(ref MessagePackWriter writer, int[]? value, MessagePackSerializerOptions options)
    {
        if (value is null)
        {
            writer.WriteNil();
            return;
        }
        var runs = new List<(int Value, int Count)>();
        foreach (var v in value)
        {
            if (runs.Count > 0 && runs[^1].Value == v)
                runs[^1] = (v, runs[^1].Count + 1);
            else
                runs.Add((v, 1));
        }
        writer.WriteArrayHeader(2 * runs.Count);
        foreach (var (v, c) in runs)
        {
            writer.Write(v);
            writer.Write(c);
        }
    }

    public int[]? Deserialize(ref MessagePackReader reader, MessagePackSerializerOptions options)
    {
        if (reader.TryReadNil())
            return null;
        int max = options is BoundedWireOptions bounded ? bounded.MaxDecodedElements : DefaultMaxLength;
        int n = reader.ReadArrayHeader();
        if (n % 2 != 0)
            throw new MessagePackSerializationException("A run-length array holds (value, count) pairs.");
        if (n / 2 > max)
            throw new MessagePackSerializationException($"{n / 2} runs exceed the {max} values allowed.");
        // Read the pairs first and size the result once: nothing is allocated past the bound.
        var runs = new (int Value, int Count)[n / 2];
        long total = 0;
        for (int i = 0; i < runs.Length; i++)
        {
            int v = reader.ReadInt32();
            int c = reader.ReadInt32();
            total += c;
            if (c <= 0 || total > max)
                throw new MessagePackSerializationException($"Run of {c} values is out of range (at most {max} values in all).");
            runs[i] = (v, c);
        }
        var values = new int[total];
        int at = 0;
        foreach (var (v, c) in runs)
        {
            values.AsSpan(at, c).Fill(v);
            at += c;
        }
        return values;
    }
}
