using System.Buffers;
using System.Buffers.Binary;
using System.Numerics.Tensors;
using System.Runtime.InteropServices;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Win32.SafeHandles;

namespace Ferret.Onnx.Checkpoints;

/// <summary>One tensor's entry in a safetensors header.</summary>
public sealed record SafeTensorInfo(string Name, string DType, long[] Shape, long Begin, long End)
{
    public long Count => Shape.Aggregate(1L, (a, d) => a * d);
}

/// <summary>Named float32 tensors read a slice at a time (a safetensors file, a Hugging Face folder of shards).</summary>
public interface ITensorReader
{
    /// <summary>Reads elements <c>start .. start + destination.Length</c> of a tensor, converted to float32.</summary>
    void ReadFloat32(string name, long start, Span<float> destination);
}

/// <summary>
/// Reads a safetensors file (8-byte little-endian header length, JSON header, raw data), validating the header
/// first, and converts F32, F16, BF16 and F64 tensors to float32 on read. Reads are positional (no memory
/// map), so reading a model larger than memory tensor by tensor keeps none of it resident; offsets are 64-bit.
/// </summary>
public sealed class SafeTensorsReader : IDisposable, ITensorReader
{
    /// <summary>Stored bytes converted per step for non-F32 tensors.</summary>
    private const int ConvertBytes = 1 << 20;

    private readonly SafeFileHandle _file;
    private readonly Dictionary<string, SafeTensorInfo> _byName;
    private readonly long _dataStart;

    private SafeTensorsReader(string path, SafeFileHandle file, List<SafeTensorInfo> tensors, Dictionary<string, string> metadata, long dataStart)
    {
        Path = path;
        _file = file;
        Tensors = tensors;
        Metadata = metadata;
        _dataStart = dataStart;
        _byName = tensors.ToDictionary(t => t.Name, StringComparer.Ordinal);
    }

    public string Path { get; }

    public IReadOnlyList<SafeTensorInfo> Tensors { get; }

    public IReadOnlyDictionary<string, string> Metadata { get; }

    public static int DTypeSize(string dtype) => dtype switch
    {
        "F32" or "I32" or "U32" => 4,
        "F16" or "BF16" or "I16" or "U16" => 2,
        "F64" or "I64" or "U64" => 8,
        "I8" or "U8" or "BOOL" => 1,
        _ => 0,
    };

    public static SafeTensorsReader Open(string path)
    {
        if (!File.Exists(path))
            throw new FileNotFoundException($"safetensors file '{path}' does not exist.", path);
        long length = new FileInfo(path).Length;
        if (length < 8)
            throw new InvalidDataException($"'{path}' is {length} bytes: too short for a safetensors header.");
        Span<byte> prefix = stackalloc byte[8];
        using (var s = File.OpenRead(path))
            s.ReadExactly(prefix);
        ulong headerLength = BinaryPrimitives.ReadUInt64LittleEndian(prefix);
        if (headerLength > (ulong)(length - 8) || headerLength > 100_000_000)
            throw new InvalidDataException($"'{path}' declares a {headerLength}-byte header in a {length}-byte file (truncated or not safetensors).");
        var headerBytes = new byte[headerLength];
        using (var s = File.OpenRead(path))
        {
            s.Position = 8;
            s.ReadExactly(headerBytes);
        }
        JsonObject header;
        try
        {
            header = JsonNode.Parse(headerBytes) as JsonObject ?? throw new InvalidDataException($"The header of '{path}' is not a JSON object.");
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"The header of '{path}' is not valid JSON: {e.Message}", e);
        }
        long dataStart = 8 + (long)headerLength;
        long dataLength = length - dataStart;
        var tensors = new List<SafeTensorInfo>();
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (name, node) in header)
        {
            if (name == "__metadata__")
            {
                if (node is JsonObject m)
                {
                    foreach (var (k, v) in m)
                        metadata[k] = v?.GetValue<string>() ?? "";
                }
                continue;
            }
            tensors.Add(ParseEntry(path, name, node, dataLength));
        }
        var ordered = tensors.OrderBy(t => t.Begin).ToList();
        for (int i = 1; i < ordered.Count; i++)
        {
            if (ordered[i].Begin < ordered[i - 1].End)
                throw new InvalidDataException($"'{path}': tensors '{ordered[i - 1].Name}' and '{ordered[i].Name}' overlap.");
        }
        return new SafeTensorsReader(path, File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read), tensors, metadata, dataStart);
    }

    private static SafeTensorInfo ParseEntry(string path, string name, JsonNode? node, long dataLength)
    {
        try
        {
            var o = node as JsonObject ?? throw new InvalidDataException("not an object");
            var dtype = o["dtype"]?.GetValue<string>() ?? throw new InvalidDataException("no dtype");
            var shape = (o["shape"] as JsonArray ?? throw new InvalidDataException("no shape")).Select(d => d!.GetValue<long>()).ToArray();
            var offsets = (o["data_offsets"] as JsonArray ?? throw new InvalidDataException("no data_offsets")).Select(d => d!.GetValue<long>()).ToArray();
            int size = DTypeSize(dtype);
            if (size == 0)
                throw new InvalidDataException($"unknown dtype '{dtype}'");
            if (offsets.Length != 2 || offsets[0] < 0 || offsets[1] < offsets[0])
                throw new InvalidDataException($"bad data_offsets [{string.Join(", ", offsets)}]");
            if (shape.Any(d => d < 0))
                throw new InvalidDataException($"negative dimension in shape [{string.Join(", ", shape)}]");
            long expected = shape.Aggregate(1L, (a, d) => a * d) * size;
            if (offsets[1] - offsets[0] != expected)
                throw new InvalidDataException($"{offsets[1] - offsets[0]} bytes for a {dtype} tensor of shape [{string.Join(", ", shape)}] ({expected} expected)");
            if (offsets[1] > dataLength)
                throw new InvalidDataException($"data ends at byte {offsets[1]} but the file holds {dataLength} data bytes (truncated?)");
            return new SafeTensorInfo(name, dtype, shape, offsets[0], offsets[1]);
        }
        catch (Exception e) when (e is InvalidOperationException or FormatException or JsonException)
        {
            throw new InvalidDataException($"'{path}', tensor '{name}': malformed header entry ({e.Message}).", e);
        }
        catch (InvalidDataException e) when (!e.Message.StartsWith('\''))
        {
            throw new InvalidDataException($"'{path}', tensor '{name}': {e.Message}.", e);
        }
    }

    public bool Contains(string name) => _byName.ContainsKey(name);

    public SafeTensorInfo GetInfo(string name) =>
        _byName.TryGetValue(name, out var t) ? t : throw new KeyNotFoundException($"'{Path}' has no tensor '{name}'.");

    /// <summary>Reads a tensor into float32, converting from its stored type.</summary>
    public void ReadFloat32(string name, Span<float> destination)
    {
        var t = GetInfo(name);
        if (destination.Length != t.Count)
            throw new ArgumentException($"Tensor '{name}' in '{Path}' has {t.Count} elements; the destination holds {destination.Length}.");
        ReadFloat32(name, 0, destination);
    }

    /// <summary>Reads elements <c>start .. start + destination.Length</c> of a tensor, converted to float32.</summary>
    public void ReadFloat32(string name, long start, Span<float> destination)
    {
        var t = GetInfo(name);
        if (start < 0 || start + destination.Length > t.Count)
            throw new ArgumentOutOfRangeException(nameof(start), $"Elements [{start}, {start + destination.Length}) lie outside tensor '{name}' of {t.Count} elements in '{Path}'.");
        int size = DTypeSize(t.DType);
        long offset = _dataStart + t.Begin + (start * size);
        if (t.DType == "F32")
        {
            ReadExactly(offset, MemoryMarshal.AsBytes(destination));
            return;
        }
        if (t.DType is not ("F16" or "BF16" or "F64"))
            throw new NotSupportedException($"Tensor '{name}' in '{Path}' is {t.DType}; only F32, F16, BF16 and F64 weights can be read.");
        var raw = ArrayPool<byte>.Shared.Rent(ConvertBytes);
        try
        {
            int per = ConvertBytes / size;
            for (int i = 0; i < destination.Length; i += per)
            {
                int n = Math.Min(per, destination.Length - i);
                var bytes = raw.AsSpan(0, n * size);
                ReadExactly(offset + ((long)i * size), bytes);
                Convert(t.DType, bytes, destination.Slice(i, n));
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(raw);
        }
    }

    private static void Convert(string dtype, ReadOnlySpan<byte> bytes, Span<float> destination)
    {
        switch (dtype)
        {
            case "F16":
                TensorPrimitives.ConvertToSingle(MemoryMarshal.Cast<byte, Half>(bytes), destination);
                break;
            case "BF16":
                {
                    var raw = MemoryMarshal.Cast<byte, ushort>(bytes);
                    for (int i = 0; i < raw.Length; i++)
                        destination[i] = BitConverter.UInt32BitsToSingle((uint)raw[i] << 16);
                    break;
                }
            default:
                {
                    var raw = MemoryMarshal.Cast<byte, double>(bytes);
                    for (int i = 0; i < raw.Length; i++)
                        destination[i] = (float)raw[i];
                    break;
                }
        }
    }

    private void ReadExactly(long offset, Span<byte> destination)
    {
        while (!destination.IsEmpty)
        {
            int n = RandomAccess.Read(_file, destination, offset);
            if (n == 0)
                throw new InvalidDataException($"'{Path}' ends at byte {offset}, inside a tensor (truncated?).");
            destination = destination[n..];
            offset += n;
        }
    }

    public void Dispose() => _file.Dispose();
}
