using System.Buffers;
using System.Runtime.InteropServices;
using MessagePack;
using MessagePack.Formatters;

namespace Ferret.Core.Packets;

/// <summary>
/// Writes a float32 array as one MessagePack <c>bin</c> of little-endian bytes: 4 bytes per value instead of
/// 5, and a memory copy instead of a loop; full-model deltas travel this way.
/// </summary>
public sealed class RawFloat32Formatter : IMessagePackFormatter<float[]?>
{
    public void Serialize(ref MessagePackWriter writer, float[]? value, MessagePackSerializerOptions options)
    {
        if (value is null)
        {
            writer.WriteNil();
            return;
        }
        if (!BitConverter.IsLittleEndian)
            throw new PlatformNotSupportedException("Raw float32 payloads are little-endian.");
        writer.Write(MemoryMarshal.AsBytes(value.AsSpan()));
    }

    public float[]? Deserialize(ref MessagePackReader reader, MessagePackSerializerOptions options)
    {
        if (reader.TryReadNil())
            return null;
        var bytes = reader.ReadBytes() ?? throw new MessagePackSerializationException("Expected a float32 bin payload.");
        if (bytes.Length % 4 != 0)
            throw new MessagePackSerializationException($"A float32 payload of {bytes.Length} bytes is not a whole number of values.");
        var values = new float[bytes.Length / 4];
        bytes.CopyTo(MemoryMarshal.AsBytes(values.AsSpan()));
        return values;
    }
}
