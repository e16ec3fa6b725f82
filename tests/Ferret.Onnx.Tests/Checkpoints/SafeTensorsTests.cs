using System.Buffers.Binary;
using System.Text;
using System.Text.Json.Nodes;
using Ferret.Onnx.Checkpoints;

namespace Ferret.Onnx.Tests.Checkpoints;

public sealed class SafeTensorsTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    /// <summary>Writes a safetensors file by hand with tensors of any dtype.</summary>
    internal static void WriteRaw(string path, params (string Name, string DType, long[] Shape, byte[] Data)[] tensors)
    {
        var header = new JsonObject();
        long offset = 0;
        foreach (var (name, dtype, shape, data) in tensors)
        {
            header[name] = new JsonObject { ["dtype"] = dtype, ["shape"] = new JsonArray(shape.Select(s => (JsonNode?)s).ToArray()), ["data_offsets"] = new JsonArray(offset, offset + data.Length) };
            offset += data.Length;
        }
        var json = Encoding.UTF8.GetBytes(header.ToJsonString());
        using var s = File.Create(path);
        var prefix = new byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(prefix, (ulong)json.Length);
        s.Write(prefix);
        s.Write(json);
        foreach (var t in tensors)
            s.Write(t.Data);
    }

    [Fact]
    public void Written_tensors_read_back_exactly()
    {
        var path = _dir.File("a.safetensors");
        float[] a = [1.5f, -2, 3.25f, 0, 7, 8];
        float[] b = [0.1f];
        SafeTensorsWriter.Write(path, [("w", new long[] { 2, 3 }, a), ("b", new long[] { 1 }, b)], new Dictionary<string, string> { ["format"] = "pt" });
        using var r = SafeTensorsReader.Open(path);
        Assert.Equal(["w", "b"], r.Tensors.Select(t => t.Name));
        var back = new float[6];
        r.ReadFloat32("w", back);
        Assert.Equal(a, back);
        Assert.Equal("pt", r.Metadata["format"]);
        // The header is padded so the data starts 8-byte aligned.
        Assert.Equal(0, (8 + (long)BinaryPrimitives.ReadUInt64LittleEndian(File.ReadAllBytes(path).AsSpan(0, 8))) % 8);
    }

    [Fact]
    public void Half_and_bfloat16_tensors_convert_to_float32()
    {
        var path = _dir.File("h.safetensors");
        float[] values = [1f, -0.5f, 3.140625f, 65504f];
        var f16 = values.SelectMany(v => BitConverter.GetBytes(BitConverter.HalfToUInt16Bits((Half)v))).ToArray();
        var bf16 = values.SelectMany(v => BitConverter.GetBytes((ushort)(BitConverter.SingleToUInt32Bits(v) >> 16))).ToArray();
        var f64 = values.SelectMany(v => BitConverter.GetBytes((double)v)).ToArray();
        WriteRaw(path, ("h", "F16", [4], f16), ("bf", "BF16", [2, 2], bf16), ("d", "F64", [4], f64));
        using var r = SafeTensorsReader.Open(path);
        var dst = new float[4];
        r.ReadFloat32("h", dst);
        Assert.Equal(values, dst);
        r.ReadFloat32("bf", dst);
        Assert.Equal([1f, -0.5f, 3.140625f, 65280f], dst);
        r.ReadFloat32("d", dst);
        Assert.Equal(values, dst);
    }

    [Fact]
    public void Slices_of_converted_tensors_read_across_the_conversion_buffer()
    {
        // 700,000 values: 1.4 MB of BF16 and F16, 5.6 MB of F64, so conversions run in several 1 MiB steps.
        const int n = 700_000;
        var values = Enumerable.Range(0, n).Select(i => (float)(i % 256) - 128f).ToArray(); // exact in BF16 and F16
        var path = _dir.File("slices.safetensors");
        WriteRaw(path,
            ("bf", "BF16", [n], values.SelectMany(v => BitConverter.GetBytes((ushort)(BitConverter.SingleToUInt32Bits(v) >> 16))).ToArray()),
            ("h", "F16", [n], values.SelectMany(v => BitConverter.GetBytes(BitConverter.HalfToUInt16Bits((Half)v))).ToArray()),
            ("d", "F64", [n], values.SelectMany(v => BitConverter.GetBytes((double)v)).ToArray()));
        using var r = SafeTensorsReader.Open(path);
        foreach (var name in new[] { "bf", "h", "d" })
        {
            var slice = new float[600_001];
            r.ReadFloat32(name, 99_999, slice);
            Assert.True(slice.AsSpan().SequenceEqual(values.AsSpan(99_999, 600_001)), $"{name}: elements 99,999 .. 700,000 differ");
        }
        Assert.Throws<ArgumentOutOfRangeException>(() => r.ReadFloat32("bf", 699_999, new float[2]));
    }

    [Fact]
    public void A_truncated_file_names_the_file_and_tensor()
    {
        var path = _dir.File("t.safetensors");
        SafeTensorsWriter.Write(path, [("weight", new long[] { 100 }, new float[100])]);
        var bytes = File.ReadAllBytes(path);
        File.WriteAllBytes(path, bytes[..^40]);
        var e = Assert.Throws<InvalidDataException>(() => SafeTensorsReader.Open(path));
        Assert.Contains(path, e.Message);
        Assert.Contains("'weight'", e.Message);
        Assert.Contains("truncated", e.Message);
    }

    [Theory]
    [InlineData("{\"w\": {\"dtype\": \"Q7\", \"shape\": [1], \"data_offsets\": [0, 4]}}", "unknown dtype")]
    [InlineData("{\"w\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 4]}}", "4 bytes for a F32 tensor of shape [2]")]
    [InlineData("{\"w\": {\"dtype\": \"F32\", \"shape\": [1]}}", "no data_offsets")]
    [InlineData("not json", "not valid JSON")]
    public void Malformed_headers_are_refused_with_the_reason(string header, string reason)
    {
        var path = _dir.File("m.safetensors");
        var json = Encoding.UTF8.GetBytes(header);
        var bytes = new byte[8 + json.Length + 16];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, (ulong)json.Length);
        json.CopyTo(bytes, 8);
        File.WriteAllBytes(path, bytes);
        Assert.Contains(reason, Assert.Throws<InvalidDataException>(() => SafeTensorsReader.Open(path)).Message);
    }

    [Fact]
    public void A_header_longer_than_the_file_is_refused()
    {
        var path = _dir.File("l.safetensors");
        var bytes = new byte[16];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, 1000);
        File.WriteAllBytes(path, bytes);
        Assert.Contains("1000-byte header", Assert.Throws<InvalidDataException>(() => SafeTensorsReader.Open(path)).Message);
    }
}
