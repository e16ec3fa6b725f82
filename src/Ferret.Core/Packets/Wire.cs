using MessagePack;

namespace Ferret.Core.Packets;

/// <summary>MessagePack (de)serialisation of Ferret.NET's contracts, with untrusted-data security on.</summary>
public static class Wire
{
    public static MessagePackSerializerOptions Options { get; } =
        MessagePackSerializerOptions.Standard.WithSecurity(MessagePackSecurity.UntrustedData);

    public static byte[] Serialize<T>(T value) => MessagePackSerializer.Serialize(value, Options);

    /// <summary>Reads a contract; malformed bytes become an <see cref="InvalidDataException"/> that says what was expected.</summary>
    public static T Deserialize<T>(ReadOnlyMemory<byte> bytes)
    {
        try
        {
            return MessagePackSerializer.Deserialize<T>(bytes, Options) ?? throw new InvalidDataException($"Expected a {typeof(T).Name}, got nil.");
        }
        catch (MessagePackSerializationException e)
        {
            throw new InvalidDataException($"Malformed {typeof(T).Name}: {e.InnerException?.Message ?? e.Message}", e);
        }
    }
}
