using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text.Json.Nodes;

namespace Ferret.Onnx.Checkpoints;

/// <summary>Writes float32 safetensors files atomically (header padded to 8 bytes, tensors in the given order).</summary>
public static class SafeTensorsWriter
{
    public static void Write(string path, IEnumerable<(string Name, IReadOnlyList<long> Shape, ReadOnlyMemory<float> Data)> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        var list = tensors.ToList();
        foreach (var (name, shape, data) in list)
        {
            long count = shape.Aggregate(1L, (a, d) => a * d);
            if (count != data.Length)
                throw new ArgumentException($"Tensor '{name}' has shape [{string.Join(", ", shape)}] but {data.Length} values.");
        }
        using var writer = new SafeTensorsStreamWriter(path, list.Select(t => (t.Name, t.Shape)).ToList(), metadata);
        foreach (var (_, _, data) in list)
            writer.Append(data.Span);
        writer.Complete();
    }
}

/// <summary>
/// Writes a float32 safetensors file one slice at a time: the header first (every shape is known up front), then
/// the values in tensor order, so a model larger than memory never has to be held. The file is written beside
/// its target and moved into place by <see cref="Complete"/>; disposing without completing deletes it.
/// </summary>
public sealed class SafeTensorsStreamWriter : IDisposable
{
    private readonly string _temporary;
    private readonly FileStream _stream;
    private bool _completed;

    public SafeTensorsStreamWriter(string path, IReadOnlyList<(string Name, IReadOnlyList<long> Shape)> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        var header = Header(tensors, metadata, out long values);
        Path = path;
        TotalValues = values;
        _temporary = path + ".tmp-" + Guid.NewGuid().ToString("N")[..8];
        // Preallocating claims the disk space now: a full disk fails at the start, not hours in.
        _stream = new FileStream(_temporary, new FileStreamOptions
        {
            Mode = FileMode.CreateNew,
            Access = FileAccess.Write,
            Share = FileShare.None,
            PreallocationSize = header.Length + (4 * values),
            BufferSize = 0,
        });
        try
        {
            _stream.Write(header);
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    public string Path { get; }

    /// <summary>Float32 values the header promises.</summary>
    public long TotalValues { get; }

    /// <summary>Values written so far.</summary>
    public long WrittenValues { get; private set; }

    /// <summary>
    /// The 8-byte length prefix and the JSON header padded with spaces to a multiple of 8; data offsets are
    /// 64-bit, so a file may hold more than 4 GiB. <paramref name="values"/> is the total number of float32 values.
    /// </summary>
    public static byte[] Header(IReadOnlyList<(string Name, IReadOnlyList<long> Shape)> tensors, IReadOnlyDictionary<string, string>? metadata, out long values)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        var header = new JsonObject();
        if (metadata is { Count: > 0 })
            header["__metadata__"] = new JsonObject(metadata.Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)JsonValue.Create(kv.Value))));
        long offset = 0;
        foreach (var (name, shape) in tensors)
        {
            long count = 1;
            foreach (var d in shape)
            {
                if (d < 0)
                    throw new ArgumentException($"Tensor '{name}' has a negative dimension in shape [{string.Join(", ", shape)}].", nameof(tensors));
                count = checked(count * d);
            }
            long end = checked(offset + (4 * count));
            header[name] = new JsonObject
            {
                ["dtype"] = "F32",
                ["shape"] = new JsonArray(shape.Select(d => (JsonNode?)JsonValue.Create(d)).ToArray()),
                ["data_offsets"] = new JsonArray(offset, end),
            };
            offset = end;
        }
        values = offset / 4;
        var json = System.Text.Encoding.UTF8.GetBytes(header.ToJsonString());
        int padded = (json.Length + 7) / 8 * 8;
        var bytes = new byte[8 + padded];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, (ulong)padded);
        json.CopyTo(bytes, 8);
        bytes.AsSpan(8 + json.Length).Fill((byte)' ');
        return bytes;
    }

    /// <summary>The next values in flat tensor order.</summary>
    public void Append(ReadOnlySpan<float> values)
    {
        ObjectDisposedException.ThrowIf(_completed, this);
        if (WrittenValues + values.Length > TotalValues)
            throw new InvalidOperationException($"'{Path}' holds {TotalValues} values; appending {values.Length} after {WrittenValues} overruns it.");
        // Whole-span byte views overflow past 2 GiB; write in slices.
        const int Slice = 1 << 26;
        for (int i = 0; i < values.Length; i += Slice)
            _stream.Write(MemoryMarshal.AsBytes(values.Slice(i, Math.Min(Slice, values.Length - i))));
        WrittenValues += values.Length;
    }

    /// <summary>Checks every value arrived, flushes, and moves the file into place.</summary>
    public void Complete()
    {
        ObjectDisposedException.ThrowIf(_completed, this);
        if (WrittenValues != TotalValues)
            throw new InvalidOperationException($"'{Path}' got {WrittenValues} of {TotalValues} values.");
        _stream.Flush(flushToDisk: false);
        _stream.Dispose();
        File.Move(_temporary, Path, overwrite: true);
        _completed = true;
    }

    public void Dispose()
    {
        _stream.Dispose();
        if (!_completed)
            File.Delete(_temporary);
        _completed = true;
    }
}
