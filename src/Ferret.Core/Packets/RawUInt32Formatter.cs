using System.Buffers;
using System.Runtime.InteropServices;
using MessagePack;
using MessagePack.Formatters;

namespace Ferret.Core.Packets;

/// <summary>A uint32 array as one MessagePack <c>bin</c> of little-endian bytes: masked vectors are uniform, so 4 bytes each beats 5.</summary>
public sealed class RawUInt32Formatter : IMessagePackFormatter<uint[]?>
{
    public void Serialize(ref MessagePackWriter writer, uint[]? value, MessagePackSerializerOptions options)
    {
        if (value is null)
        {
            writer.WriteNil();
            return;
        }
        if (!BitConverter.IsLittleEndian)
            throw new PlatformNotSupportedException("Raw uint32 payloads are little-endian.");
        writer.Write(MemoryMarshal.AsBytes(value.AsSpan()));
    }

    public uint[]? Deserialize(ref MessagePackReader reader, MessagePackSerializerOptions options)
    {
        if (reader.TryReadNil())
            return null;
        var bytes = reader.ReadBytes() ?? throw new MessagePackSerializationException("Expected a uint32 bin payload.");
        if (bytes.Length % 4 != 0)
            throw new MessagePackSerializationException($"A uint32 payload of {bytes.Length} bytes is not a whole number of values.");
        var values = new uint[bytes.Length / 4];
        bytes.CopyTo(MemoryMarshal.AsBytes(values.AsSpan()));
        return values;
    }
}
