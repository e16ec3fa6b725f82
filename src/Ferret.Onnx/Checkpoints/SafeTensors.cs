using System.Buffers.Binary;
using System.IO.MemoryMappedFiles;
using System.Runtime.InteropServices;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Ferret.Onnx.Checkpoints;

/// <summary>One tensor's entry in a safetensors header.</summary>
public sealed record SafeTensorInfo(string Name, string DType, long[] Shape, long Begin, long End)
{
    public long Count => Shape.Aggregate(1L, (a, d) => a * d);
}

/// <summary>
/// Reads a safetensors file (8-byte little-endian header length, JSON header, raw data) through a memory
/// map, validating the header first, and converts F32, F16, BF16 and F64 tensors to float32 on read.
/// </summary>
public sealed class SafeTensorsReader : IDisposable
{
    private readonly MemoryMappedFile _map;
    private readonly MemoryMappedViewAccessor _view;
    private readonly Dictionary<string, SafeTensorInfo> _byName;
    private readonly long _dataStart;

    private SafeTensorsReader(string path, MemoryMappedFile map, MemoryMappedViewAccessor view, List<SafeTensorInfo> tensors, Dictionary<string, string> metadata, long dataStart)
    {
        Path = path;
        _map = map;
        _view = view;
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
        var map = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
        try
        {
            var view = map.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
            return new SafeTensorsReader(path, map, view, tensors, metadata, dataStart);
        }
        catch
        {
            map.Dispose();
            throw;
        }
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
        long offset = _dataStart + t.Begin;
        switch (t.DType)
        {
            case "F32":
                ReadRaw(offset, MemoryMarshal.AsBytes(destination));
                break;
            case "F16":
                {
                    var raw = new ushort[t.Count];
                    ReadRaw(offset, MemoryMarshal.AsBytes(raw.AsSpan()));
                    for (int i = 0; i < raw.Length; i++)
                        destination[i] = (float)BitConverter.UInt16BitsToHalf(raw[i]);
                    break;
                }
            case "BF16":
                {
                    var raw = new ushort[t.Count];
                    ReadRaw(offset, MemoryMarshal.AsBytes(raw.AsSpan()));
                    for (int i = 0; i < raw.Length; i++)
                        destination[i] = BitConverter.UInt32BitsToSingle((uint)raw[i] << 16);
                    break;
                }
            case "F64":
                {
                    var raw = new double[t.Count];
                    ReadRaw(offset, MemoryMarshal.AsBytes(raw.AsSpan()));
                    for (int i = 0; i < raw.Length; i++)
                        destination[i] = (float)raw[i];
                    break;
                }
            default:
                throw new NotSupportedException($"Tensor '{name}' in '{Path}' is {t.DType}; only F32, F16, BF16 and F64 weights can be read.");
        }
    }

    private void ReadRaw(long offset, Span<byte> destination)
    {
        unsafe
        {
            byte* ptr = null;
            _view.SafeMemoryMappedViewHandle.AcquirePointer(ref ptr);
            try
            {
                new ReadOnlySpan<byte>(ptr + _view.PointerOffset + offset, destination.Length).CopyTo(destination);
            }
            finally
            {
                _view.SafeMemoryMappedViewHandle.ReleasePointer();
            }
        }
    }

    public void Dispose()
    {
        _view.Dispose();
        _map.Dispose();
    }
}

/// <summary>Writes float32 safetensors files atomically (header padded to 8 bytes, tensors in the given order).</summary>
public static class SafeTensorsWriter
{
    public static void Write(string path, IEnumerable<(string Name, IReadOnlyList<long> Shape, ReadOnlyMemory<float> Data)> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        var list = tensors.ToList();
        var header = new JsonObject();
        if (metadata is { Count: > 0 })
            header["__metadata__"] = new JsonObject(metadata.Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)JsonValue.Create(kv.Value))));
        long offset = 0;
        foreach (var (name, shape, data) in list)
        {
            long count = shape.Aggregate(1L, (a, d) => a * d);
            if (count != data.Length)
                throw new ArgumentException($"Tensor '{name}' has shape [{string.Join(", ", shape)}] but {data.Length} values.");
            header[name] = new JsonObject
            {
                ["dtype"] = "F32",
                ["shape"] = new JsonArray(shape.Select(d => (JsonNode?)JsonValue.Create(d)).ToArray()),
                ["data_offsets"] = new JsonArray(offset, offset + (4 * count)),
            };
            offset += 4 * count;
        }
        var json = System.Text.Encoding.UTF8.GetBytes(header.ToJsonString());
        int padded = (json.Length + 7) / 8 * 8;
        var tmp = path + ".tmp-" + Guid.NewGuid().ToString("N")[..8];
        try
        {
            using (var s = File.Create(tmp))
            {
                Span<byte> prefix = stackalloc byte[8];
                BinaryPrimitives.WriteUInt64LittleEndian(prefix, (ulong)padded);
                s.Write(prefix);
                s.Write(json);
                for (int i = json.Length; i < padded; i++)
                    s.WriteByte((byte)' ');
                foreach (var (_, _, data) in list)
                    s.Write(MemoryMarshal.AsBytes(data.Span));
            }
            File.Move(tmp, path, overwrite: true);
        }
        finally
        {
            File.Delete(tmp);
        }
    }
}
