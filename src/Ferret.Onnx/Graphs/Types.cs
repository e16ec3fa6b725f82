using System.Buffers.Binary;
using System.Runtime.InteropServices;

namespace Ferret.Onnx.Graphs;

/// <summary>ONNX tensor element types (the numbers of TensorProto.DataType).</summary>
public enum ElementType
{
    Undefined = 0,
    Float = 1,
    UInt8 = 2,
    Int8 = 3,
    UInt16 = 4,
    Int16 = 5,
    Int32 = 6,
    Int64 = 7,
    String = 8,
    Bool = 9,
    Float16 = 10,
    Double = 11,
    UInt32 = 12,
    UInt64 = 13,
    BFloat16 = 16,
}

public static class ElementTypes
{
    public static bool IsFloatingPoint(this ElementType t) => t is ElementType.Float or ElementType.Double or ElementType.Float16 or ElementType.BFloat16;

    public static int Size(this ElementType t) => t switch
    {
        ElementType.Float or ElementType.Int32 or ElementType.UInt32 => 4,
        ElementType.Double or ElementType.Int64 or ElementType.UInt64 => 8,
        ElementType.Float16 or ElementType.BFloat16 or ElementType.Int16 or ElementType.UInt16 => 2,
        ElementType.UInt8 or ElementType.Int8 or ElementType.Bool => 1,
        _ => throw new NotSupportedException($"Element type {t} has no fixed size."),
    };
}

/// <summary>A dimension: a static size, a named symbolic size (<c>batch</c>), or unknown.</summary>
public readonly record struct Dim
{
    public Dim(long value)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(value);
        Value = value;
        Symbol = null;
    }

    public Dim(string symbol)
    {
        ArgumentException.ThrowIfNullOrEmpty(symbol);
        Value = null;
        Symbol = symbol;
    }

    public static Dim Unknown => default;

    public long? Value { get; }

    public string? Symbol { get; }

    public bool IsStatic => Value.HasValue;

    public bool IsKnown => Value.HasValue || Symbol is not null;

    /// <summary>True when both are the same static size or the same symbol; unknown dims equal nothing.</summary>
    public bool SameAs(Dim other) => IsKnown && Value == other.Value && Symbol == other.Symbol;

    public static implicit operator Dim(long value) => new(value);

    public static implicit operator Dim(string symbol) => new(symbol);

    public override string ToString() => Value?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? Symbol ?? "?";
}

/// <summary>An element type and a shape (null when even the rank is unknown).</summary>
public sealed record TensorType(ElementType ElementType, Dim[]? Shape)
{
    public int Rank => Shape?.Length ?? throw new InvalidOperationException("The rank of this value is unknown.");

    public bool HasRank => Shape is not null;

    /// <summary>Static element count, when every dimension is static.</summary>
    public long? StaticSize => Shape is null || Shape.Any(d => !d.IsStatic) ? null : Shape.Aggregate(1L, (a, d) => a * d.Value!.Value);

    public bool SameShape(TensorType other) =>
        other is not null && Shape is not null && other.Shape is not null && Shape.Length == other.Shape.Length
        && Shape.Zip(other.Shape).All(p => p.First.SameAs(p.Second));

    public bool Equals(TensorType? other) =>
        other is not null && ElementType == other.ElementType
        && (Shape is null ? other.Shape is null : other.Shape is not null && Shape.SequenceEqual(other.Shape));

    public override int GetHashCode() => HashCode.Combine(ElementType, Shape?.Length ?? -1);

    public override string ToString() => $"{ElementType}[{(Shape is null ? "?" : string.Join(", ", Shape))}]";
}

/// <summary>A constant tensor: element type, dimensions and little-endian raw bytes.</summary>
public sealed class TensorData
{
    public TensorData(ElementType elementType, long[] dims, byte[] raw)
    {
        ArgumentNullException.ThrowIfNull(dims);
        ArgumentNullException.ThrowIfNull(raw);
        long count = dims.Aggregate(1L, (a, d) => a * d);
        if (raw.LongLength != count * elementType.Size())
            throw new ArgumentException($"A {elementType} tensor of shape [{string.Join(", ", dims)}] needs {count * elementType.Size()} bytes, got {raw.LongLength}.");
        ElementType = elementType;
        Dims = dims;
        Raw = raw;
    }

    public ElementType ElementType { get; }

    public long[] Dims { get; }

    public byte[] Raw { get; }

    public long Count => Dims.Aggregate(1L, (a, d) => a * d);

    public TensorType Type => new(ElementType, Dims.Select(d => new Dim(d)).ToArray());

    private static TensorData From<T>(ElementType type, ReadOnlySpan<T> values, long[] dims)
        where T : unmanaged
    {
        if (!BitConverter.IsLittleEndian)
            throw new PlatformNotSupportedException("Tensor data is little-endian.");
        return new TensorData(type, dims, MemoryMarshal.AsBytes(values).ToArray());
    }

    public static TensorData FromFloats(ReadOnlySpan<float> values, params long[] dims) => From(ElementType.Float, values, dims);

    public static TensorData FromDoubles(ReadOnlySpan<double> values, params long[] dims) => From(ElementType.Double, values, dims);

    public static TensorData FromInt64s(ReadOnlySpan<long> values, params long[] dims) => From(ElementType.Int64, values, dims);

    public static TensorData FromInt32s(ReadOnlySpan<int> values, params long[] dims) => From(ElementType.Int32, values, dims);

    public static TensorData FromBools(ReadOnlySpan<bool> values, params long[] dims) =>
        new(ElementType.Bool, dims, values.ToArray().Select(b => b ? (byte)1 : (byte)0).ToArray());

    /// <summary>A scalar of a floating-point type.</summary>
    public static TensorData Scalar(double value, ElementType type) => type switch
    {
        ElementType.Float => FromFloats([(float)value]),
        ElementType.Double => FromDoubles([value]),
        ElementType.Float16 => new TensorData(type, [], BitConverter.GetBytes((Half)value)),
        _ => throw new NotSupportedException($"No scalar constant of type {type}."),
    };

    public float[] ToFloats() => ElementType == ElementType.Float ? MemoryMarshal.Cast<byte, float>(Raw).ToArray() : throw new InvalidOperationException($"Tensor is {ElementType}, not Float.");

    public double[] ToDoubles() => ElementType == ElementType.Double ? MemoryMarshal.Cast<byte, double>(Raw).ToArray() : throw new InvalidOperationException($"Tensor is {ElementType}, not Double.");

    /// <summary>Integer contents widened to long (Int64, Int32, Bool...).</summary>
    public long[] ToInt64s() => ElementType switch
    {
        ElementType.Int64 => MemoryMarshal.Cast<byte, long>(Raw).ToArray(),
        ElementType.Int32 => MemoryMarshal.Cast<byte, int>(Raw).ToArray().Select(v => (long)v).ToArray(),
        ElementType.Bool or ElementType.UInt8 => Raw.Select(b => (long)b).ToArray(),
        _ => throw new InvalidOperationException($"Tensor is {ElementType}, not an integer type."),
    };

    /// <summary>Scalar value as double, for any numeric type.</summary>
    public double ScalarValue()
    {
        if (Count != 1)
            throw new InvalidOperationException($"Tensor has {Count} elements, not one.");
        return ElementType switch
        {
            ElementType.Float => BinaryPrimitives.ReadSingleLittleEndian(Raw),
            ElementType.Double => BinaryPrimitives.ReadDoubleLittleEndian(Raw),
            ElementType.Float16 => (double)BitConverter.ToHalf(Raw),
            ElementType.Int64 => BinaryPrimitives.ReadInt64LittleEndian(Raw),
            ElementType.Int32 => BinaryPrimitives.ReadInt32LittleEndian(Raw),
            _ => throw new InvalidOperationException($"No scalar value for {ElementType}."),
        };
    }
}
