using MessagePack;

namespace Ferret.Core.Packets;

/// <summary>MessagePack (de)serialisation of Ferret.NET's contracts, with untrusted-data security on.</summary>
public static class Wire
{
    public static MessagePackSerializerOptions Options { get; } =
        MessagePackSerializerOptions.Standard.WithSecurity(MessagePackSecurity.UntrustedData);

    public static byte[] Serialize<T>(T value) => MessagePackSerializer.Serialize(value, Options);

    /// <summary>
    /// Reads a contract; malformed bytes become an <see cref="InvalidDataException"/> that says what was
    /// expected. The bytes must hold exactly one value: anything after it makes the message non-canonical.
    /// </summary>
    public static T Deserialize<T>(ReadOnlyMemory<byte> bytes) => Deserialize<T>(bytes, Options);

    /// <summary>Reads a contract whose run-length fields may expand to at most <paramref name="maxDecodedElements"/> values (the experiment's shape).</summary>
    public static T Deserialize<T>(ReadOnlyMemory<byte> bytes, int maxDecodedElements) =>
        Deserialize<T>(bytes, new BoundedWireOptions(Options, maxDecodedElements));

    private static T Deserialize<T>(ReadOnlyMemory<byte> bytes, MessagePackSerializerOptions options)
    {
        T? value;
        int read;
        try
        {
            value = MessagePackSerializer.Deserialize<T>(bytes, options, out read);
        }
        catch (MessagePackSerializationException e)
        {
            throw new InvalidDataException($"Malformed {typeof(T).Name}: {e.InnerException?.Message ?? e.Message}", e);
        }
        if (value is null)
            throw new InvalidDataException($"Expected a {typeof(T).Name}, got nil.");
        if (read != bytes.Length)
            throw new InvalidDataException($"Malformed {typeof(T).Name}: {bytes.Length - read} trailing bytes after the {read}-byte message.");
        return value;
    }
}

/// <summary>
/// Serializer options that carry a bound on what a run-length field may expand to, so a few bytes cannot
/// ask the decoder for gigabytes: the door passes the experiment's own shape.
/// </summary>
public sealed class BoundedWireOptions : MessagePackSerializerOptions
{
    public BoundedWireOptions(MessagePackSerializerOptions copyFrom, int maxDecodedElements)
        : base(copyFrom)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(maxDecodedElements);
        MaxDecodedElements = maxDecodedElements;
    }

    private BoundedWireOptions(BoundedWireOptions copyFrom)
        : base(copyFrom) => MaxDecodedElements = copyFrom.MaxDecodedElements;

    /// <summary>The most values a run-length field may decode to.</summary>
    public int MaxDecodedElements { get; }

    protected override MessagePackSerializerOptions Clone() => new BoundedWireOptions(this);
}
