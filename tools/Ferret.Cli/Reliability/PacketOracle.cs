using System.Buffers;
using System.Buffers.Binary;
using Ferret.Core.Algorithms;
using MessagePack;

namespace Ferret.Cli.Reliability;

/// <summary>
/// An independent judge of packets for the fuzz harness, written from the wire format rather than from the
/// coordinator's code: it walks the MessagePack bytes itself, insists on the canonical encoding (exact array
/// lengths, minimal integer, string, bin and array headers, merged block runs, nothing after the packet) and
/// on every rule a packet must meet (its experiment and round, counts, ranges, distinct seeds, 2..K seeds per
/// Ferret block, finite values within bounds). A packet it calls invalid must never be accepted.
/// </summary>
internal sealed class PacketOracle(ExperimentDescriptor experiment, long maxSampleCount)
{
    private const double MaxComputeSeconds = 30 * 24 * 3600;

    /// <summary>Null when the packet is valid for <paramref name="round"/>; otherwise the first rule it breaks.</summary>
    public string? Judge(byte[] packet, int round)
    {
        ArgumentNullException.ThrowIfNull(packet);
        try
        {
            var reader = new MessagePackReader(packet);
            string? why = Packet(ref reader, round);
            if (why is null && !reader.End)
                why = "bytes after the packet";
            return why;
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // Whatever the reader throws on these bytes (a lying length, a wrong type, the end too early), they are not a packet.
            return "not well-formed MessagePack: " + e.Message;
        }
    }

    private string? Packet(ref MessagePackReader r, int round)
    {
        if (ArrayHeader(ref r) != 2)
            return "a union is a 2-element array";
        long tag = Integer(ref r);
        int expectedTag = experiment.Algorithm switch { FederatedAlgorithms.Ferret => 0, FederatedAlgorithms.FedKSeed => 1, _ => 2 };
        if (tag != expectedTag)
            return $"union tag {tag}; this experiment takes {expectedTag}";
        int fields = ArrayHeader(ref r);
        if (fields != expectedTag switch { 0 => 8, 1 => 7, _ => 6 })
            return $"{fields} fields";
        if (Integer(ref r) != 1)
            return "version";
        if (String(ref r) != experiment.Id)
            return "experiment id";
        if (Integer(ref r) != round)
            return "round";
        long samples = Integer(ref r);
        if (samples < 1 || samples > maxSampleCount)
            return "sample count";
        if (Stats(ref r) is { } stats)
            return stats;
        int k = experiment.Settings.CandidateSeeds;
        double bound = experiment.Settings.MaxAbsPacketValue;
        switch (tag)
        {
            case 0:
                var seeds = UInt16s(ref r);
                var blocks = Runs(ref r);
                var gammas = Floats(ref r);
                if (seeds is null || blocks is null || gammas is null)
                    return "a nil or malformed array";
                if (seeds.Length != gammas.Length || blocks.Length != gammas.Length)
                    return "array lengths differ";
                int blockCount = experiment.BlockLengths.Length;
                var perBlock = new int[blockCount];
                var seen = new HashSet<(int, int)>();
                for (int i = 0; i < seeds.Length; i++)
                {
                    if (seeds[i] >= k || blocks[i] < 0 || blocks[i] >= blockCount || !seen.Add((blocks[i], seeds[i])))
                        return "seed or block out of range, or repeated";
                    perBlock[blocks[i]]++;
                }
                if (perBlock.Any(c => c < 2 || c > k))
                    return "a block without 2..K seeds";
                return Values(gammas, bound);
            case 1:
                var indices = UInt16s(ref r);
                var scalars = Floats(ref r);
                if (indices is null || scalars is null || indices.Length != scalars.Length)
                    return "a nil, malformed or mismatched array";
                if (indices.Any(i => i >= k) || indices.Distinct().Count() != indices.Length)
                    return "seed out of range or repeated";
                return Values(scalars, bound);
            default:
                var delta = Floats(ref r);
                if (delta is null || delta.Length != experiment.ParameterCount)
                    return "delta length";
                return Values(delta, bound);
        }
    }

    private string? Stats(ref MessagePackReader r)
    {
        if (ArrayHeader(ref r) != 4)
            return "stats";
        double loss = Double(ref r);
        long forward = Integer(ref r), backward = Integer(ref r);
        double compute = Double(ref r);
        if (!double.IsFinite(loss) || Math.Abs(loss) > experiment.Settings.MaxAbsPacketValue)
            return "train loss";
        if (forward < 0 || backward < 0 || !double.IsFinite(compute) || compute < 0 || compute > MaxComputeSeconds)
            return "stats values";
        return null;
    }

    private static string? Values(float[] values, double bound) =>
        values.All(v => float.IsFinite(v) && Math.Abs(v) <= bound) ? null : "a value that is not finite or out of bounds";

    // ---- canonical MessagePack, read by hand ---------------------------------------------------------------

    private static int ArrayHeader(ref MessagePackReader r)
    {
        byte code = r.NextCode;
        int n = r.ReadArrayHeader();
        bool minimal = code switch { >= 0x90 and <= 0x9f => true, 0xdc => n >= 16, 0xdd => n > ushort.MaxValue, _ => false };
        return minimal ? n : throw new InvalidOperationException("array header not minimal");
    }

    private static long Integer(ref MessagePackReader r)
    {
        byte code = r.NextCode;
        long v = r.ReadInt64();
        bool minimal = code switch
        {
            <= 0x7f => true,
            >= 0xe0 => true,
            0xcc => v > 0x7f,
            0xcd => v > byte.MaxValue,
            0xce => v > ushort.MaxValue,
            0xcf => v > uint.MaxValue,
            0xd0 => v < -32,
            0xd1 => v < sbyte.MinValue,
            0xd2 => v < short.MinValue,
            0xd3 => v < int.MinValue,
            _ => false,
        };
        return minimal ? v : throw new InvalidOperationException("integer not minimal");
    }

    private static double Double(ref MessagePackReader r) =>
        r.NextCode == 0xcb ? r.ReadDouble() : throw new InvalidOperationException("a double is float64");

    private static string String(ref MessagePackReader r)
    {
        byte code = r.NextCode;
        var s = r.ReadString() ?? throw new InvalidOperationException("nil string");
        int n = System.Text.Encoding.UTF8.GetByteCount(s);
        bool minimal = code switch { >= 0xa0 and <= 0xbf => true, 0xd9 => n >= 32, 0xda => n > byte.MaxValue, 0xdb => n > ushort.MaxValue, _ => false };
        return minimal ? s : throw new InvalidOperationException("string header not minimal");
    }

    private static byte[]? Bin(ref MessagePackReader r)
    {
        if (r.TryReadNil())
            return null;
        byte code = r.NextCode;
        var bytes = r.ReadBytes()?.ToArray() ?? throw new InvalidOperationException("bin expected");
        bool minimal = code switch { 0xc4 => true, 0xc5 => bytes.Length > byte.MaxValue, 0xc6 => bytes.Length > ushort.MaxValue, _ => false };
        return minimal ? bytes : throw new InvalidOperationException("bin header not minimal");
    }

    private static int[]? UInt16s(ref MessagePackReader r)
    {
        var bytes = Bin(ref r);
        if (bytes is null || bytes.Length % 2 != 0)
            return null;
        var values = new int[bytes.Length / 2];
        for (int i = 0; i < values.Length; i++)
            values[i] = BinaryPrimitives.ReadUInt16LittleEndian(bytes.AsSpan(2 * i));
        return values;
    }

    private static float[]? Floats(ref MessagePackReader r)
    {
        var bytes = Bin(ref r);
        if (bytes is null || bytes.Length % 4 != 0)
            return null;
        var values = new float[bytes.Length / 4];
        for (int i = 0; i < values.Length; i++)
            values[i] = BinaryPrimitives.ReadSingleLittleEndian(bytes.AsSpan(4 * i));
        return values;
    }

    /// <summary>Block runs as (value, count) pairs: counts positive, neighbouring runs of different values, a sane total.</summary>
    private int[]? Runs(ref MessagePackReader r)
    {
        if (r.TryReadNil())
            return null;
        int n = ArrayHeader(ref r);
        if (n % 2 != 0)
            return null;
        var values = new List<int>();
        long previous = long.MinValue;
        for (int i = 0; i < n; i += 2)
        {
            long v = Integer(ref r), c = Integer(ref r);
            if (c <= 0 || v == previous || values.Count + c > (long)experiment.Settings.CandidateSeeds * experiment.BlockLengths.Length)
                return null;
            values.AddRange(Enumerable.Repeat((int)v, (int)c));
            previous = v;
        }
        return [.. values];
    }
}
