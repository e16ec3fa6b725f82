using System.Security.Cryptography;
using System.Text.Json.Nodes;
using Ferret.Core.Parameters;
using Ferret.Onnx.Artifacts;
using Ferret.Onnx.Checkpoints;
using Ferret.Onnx.Export;
using Ferret.Onnx.Models;
using Ferret.Onnx.Weights;

namespace Ferret.Onnx.Tests.Artifacts;

public sealed class StreamingExportTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    private static string FileHash(string path)
    {
        using var s = File.OpenRead(path);
        return Convert.ToHexStringLower(SHA256.HashData(s));
    }

    private static ParameterLayout LayoutOf(ModelConfig config) =>
        new(DecoderBuilder.For(config).Parameters().Select(p => (p.Name, (IReadOnlyList<long>)p.Shape)));

    // Manifest fingerprint and sha256 of params.safetensors, seed 1, from the whole-array exporter this streaming one replaced.
    public static TheoryData<string, string, string> ExportedBefore => new()
    {
        { "tiny-llama", "91af8084fc0a9acfd7995fb577ce962c838c8069aaa71498880b582b3fd48efd", "df27da4d6c2ee9b9af08e9297bfda043053cf4e94e0a9493b87722983456b9c1" },
        { "bench-llama", "ec14ba41fc7a28af3ebbe82769c0228e95152a828f1934cb7b93b8b2b91ef0c2", "db70ee956cafd2ca4221b18db93cc67ebf9b347dd3f4976088fab4cbff6de6ee" },
        { "tiny-gpt2", "01563829098e02a919705574f77e68b7191cce733630a74673ad7355644331db", "4d7ddf8549761580f12c57519bf256ff2826fde4a2ad3c74205546fbcc8fcc5a" },
    };

    [Theory]
    [MemberData(nameof(ExportedBefore))]
    public void Streaming_export_writes_the_same_bytes_and_fingerprint_as_before(string preset, string fingerprint, string fileHash)
    {
        var package = ModelExporter.Export(new ModelSource.FromPreset(preset, 1), _dir.File(preset), overwrite: false);
        Assert.True(package.Manifest.ParametersSha256 == fingerprint, $"{preset}: fingerprint {package.Manifest.ParametersSha256}, before {fingerprint}");
        Assert.True(FileHash(package.ParametersPath) == fileHash, $"{preset}: params.safetensors differs from the whole-array exporter's");
        Assert.True(package.Manifest.Initializer == "system-random-box-muller", $"{preset} records initializer '{package.Manifest.Initializer}'");
        Assert.True(package.VerifyParameters() == fingerprint, "streaming verification recomputes the manifest's fingerprint");
    }

    [Fact]
    public void Chunks_that_cross_tensor_boundaries_write_the_same_file()
    {
        // bench-llama before: fingerprint and file hash; an odd chunk length splits tensors and joins small ones.
        const string Fingerprint = "ec14ba41fc7a28af3ebbe82769c0228e95152a828f1934cb7b93b8b2b91ef0c2";
        const string FileSha = "db70ee956cafd2ca4221b18db93cc67ebf9b347dd3f4976088fab4cbff6de6ee";
        var preset = Presets.Get("bench-llama");
        var layout = LayoutOf(preset.Config);
        var path = _dir.File("small.safetensors");
        using var source = WeightRoles.Open(preset.Initializer, preset.Config, layout, seed: 1);
        using var writer = new SafeTensorsStreamWriter(path, layout.Tensors.Select(t => (t.Name, t.Shape)).ToList(), new Dictionary<string, string> { ["format"] = "pt", ["producer"] = "Ferret.NET" });
        long reported = 0;
        string fp = ParameterPump.Run(source, chunk => writer.Append(chunk.Span), new Reporter<long>(n => reported = n), chunkLength: 333_331);
        writer.Complete();
        Assert.True(fp == Fingerprint, $"fingerprint {fp}, before {Fingerprint}");
        Assert.True(FileHash(path) == FileSha, "the file written in 333,331-value chunks differs from the whole-array exporter's");
        Assert.True(reported == layout.TotalLength, $"progress ended at {reported} of {layout.TotalLength} values");
    }

    [Fact]
    public void Seeded_philox_weights_do_not_depend_on_threads_or_chunks()
    {
        var config = Presets.Get("tiny-llama").Config;
        var layout = LayoutOf(config);
        string Fingerprint(int threads, int chunk)
        {
            using var source = new PhiloxWeights(config, layout, seed: 5, maxDegreeOfParallelism: threads);
            return ParameterPump.Run(source, null, chunkLength: chunk);
        }
        string one = Fingerprint(1, ParameterPump.ChunkLength);
        Assert.True(Fingerprint(4, 65_537) == one, "4 threads in 65,537-value chunks give the bits of 1 thread in whole chunks");
        Assert.True(Fingerprint(2, 1 << 20) == one, "2 threads in 1 Mi-value chunks give the bits of 1 thread in whole chunks");

        using var weights = new PhiloxWeights(config, layout, seed: 5);
        var norm = new float[256];
        weights.Read(layout.Tensors.ToList().FindIndex(t => t.Name.EndsWith("input_layernorm.weight", StringComparison.Ordinal)), 0, norm);
        Assert.True(norm.All(v => v == 1f), "norm scales start at 1");
        var q = new float[256 * 256];
        weights.Read(layout.Tensors.ToList().FindIndex(t => t.Name.EndsWith("q_proj.weight", StringComparison.Ordinal)), 0, q);
        double std = Math.Sqrt(q.Average(v => (double)v * v));
        Assert.True(Math.Abs(std - 0.02) < 0.0005, $"projection weights have standard deviation {std:F5}, expected initializer_range 0.02");
    }

    [Fact]
    public void Paper_scale_presets_have_the_papers_shapes_and_the_fast_initializer()
    {
        foreach (var (name, parameters) in new[] { ("llama-374m", 373_867_520L), ("tinyllama-1.1b", 1_100_048_384L), ("llama2-7b", 6_738_415_616L) })
        {
            var preset = Presets.Get(name);
            long count = LayoutOf(preset.Config).TotalLength;
            Assert.True(count == parameters, $"{name} has {count:N0} parameters, expected {parameters:N0}");
            Assert.True(preset.Initializer == WeightInitializer.Philox, $"{name} draws its weights with {preset.Initializer}");
            Assert.True(preset.Config.VocabSize == 32000, $"{name} has vocabulary {preset.Config.VocabSize}");
        }
        Assert.Contains("does not fit one array", Assert.Throws<NotSupportedException>(() => Presets.Initialize(DecoderBuilder.For(Presets.Get("llama2-7b").Config), 1)).Message);
    }

    [Fact]
    public void Cancelling_an_export_leaves_nothing_behind()
    {
        using var cancel = new CancellationTokenSource();
        var output = _dir.File("cancelled");
        var progress = new Reporter<string>(m =>
        {
            if (m.StartsWith("writing", StringComparison.Ordinal) && !m.StartsWith("writing graphs", StringComparison.Ordinal))
                cancel.Cancel();
        });
        Assert.ThrowsAny<OperationCanceledException>(() => ModelExporter.Export(new ModelSource.FromPreset("tiny-llama", 1), output, overwrite: false, progress, cancellationToken: cancel.Token));
        Assert.False(Directory.Exists(output), "no package after a cancelled export");
        Assert.True(Directory.GetFileSystemEntries(_dir.Path).Length == 0, $"left behind: {string.Join(", ", Directory.GetFileSystemEntries(_dir.Path))}");
    }

    [Fact]
    public void A_package_past_two_to_the_31_parameters_opens_streams_and_refuses_one_array()
    {
        // A sparse params.safetensors: 2^31 zeros (8 GiB, never written, no disk used) then a 16-value tensor past 8 GiB.
        var dir = _dir.File("huge");
        Directory.CreateDirectory(dir);
        var tensors = new List<(string Name, IReadOnlyList<long> Shape)> { ("big", new long[] { 1L << 31 }), ("tail", new long[] { 16 }) };
        var header = SafeTensorsStreamWriter.Header(tensors, null, out long values);
        Assert.True(values == (1L << 31) + 16, $"header counts {values} values");
        var tail = Enumerable.Range(1, 16).Select(i => i * 0.5f).ToArray();
        using (var s = File.Create(Path.Combine(dir, "params.safetensors")))
        {
            s.Write(header);
            s.SetLength(header.Length + (4 * values));
            s.Position = header.Length + (4L << 31);
            s.Write(System.Runtime.InteropServices.MemoryMarshal.AsBytes(tail.AsSpan()));
        }
        var layout = new ParameterLayout(tensors);
        var graph = new GraphDescription("g.onnx", [], []);
        File.WriteAllBytes(Path.Combine(dir, "g.onnx"), []);
        var config = Presets.Get("tiny-llama").Config.ToJson();
        var manifest = new ArtifactManifest(ArtifactManifest.CurrentFormatVersion, "llama", null, config, 18,
            layout.Tensors.Select(t => new ManifestParameter(t.Name, [.. t.Shape], "float32", t.Offset, t.Length)).ToList(),
            [new ManifestBlock(0, 0, 1L << 31), new ManifestBlock(1, 1L << 31, 16)],
            new TokenizerDescription("byte", 259, 256, 257, 258, []), graph, graph, graph, "params.safetensors", "unused", layout.TotalLength, "test");
        File.WriteAllText(Path.Combine(dir, ArtifactManifest.FileName), manifest.ToJson());

        var package = ArtifactPackage.Open(dir);
        Assert.True(package.Layout["tail"].Offset == 1L << 31, $"tail at element {package.Layout["tail"].Offset}");
        Assert.True(package.Blocks[1].Offset == 1L << 31, "the second block starts past 2^31");
        Assert.Contains("more than one array can", Assert.Throws<NotSupportedException>(() => package.LoadParameters()).Message);
        using var weights = package.OpenParameters();
        var read = new float[16];
        weights.Read(1, 0, read);
        Assert.True(read.SequenceEqual(tail), $"read [{string.Join(", ", read)}] at byte offset 8 GiB");
        var zeros = new float[4];
        weights.Read(0, (1L << 31) - 4, zeros);
        Assert.True(zeros.All(v => v == 0), "the last values of the sparse tensor read as zeros");
    }

    [Fact]
    public void Stream_writer_header_lays_a_7b_model_past_4_gib_with_exact_offsets()
    {
        var layout = LayoutOf(Presets.Get("llama2-7b").Config);
        var header = SafeTensorsStreamWriter.Header(layout.Tensors.Select(t => (t.Name, t.Shape)).ToList(), null, out long values);
        Assert.True(values == layout.TotalLength, $"header counts {values} values, layout {layout.TotalLength}");
        var json = JsonNode.Parse(header.AsSpan(8).ToArray())!.AsObject();
        var head = json["lm_head.weight"]!["data_offsets"]!.AsArray();
        Assert.True(head[0]!.GetValue<long>() == 4 * layout["lm_head.weight"].Offset, $"lm_head begins at byte {head[0]}");
        Assert.True(head[1]!.GetValue<long>() == 4 * layout.TotalLength, $"lm_head ends at byte {head[1]}, expected {4 * layout.TotalLength} (26.95 GB)");
        Assert.True(header.Length % 8 == 0, "the header is padded to 8 bytes");
    }

    [Fact]
    public void Stream_writer_refuses_too_many_or_too_few_values_and_leaves_no_file()
    {
        var path = _dir.File("s.safetensors");
        var tensors = new List<(string Name, IReadOnlyList<long> Shape)> { ("a", new long[] { 2, 3 }), ("b", new long[] { 4 }) };
        using (var writer = new SafeTensorsStreamWriter(path, tensors))
        {
            writer.Append([1, 2, 3, 4, 5]);
            Assert.Contains("got 5 of 10", Assert.Throws<InvalidOperationException>(writer.Complete).Message);
            Assert.Contains("overruns", Assert.Throws<InvalidOperationException>(() => writer.Append(new float[6])).Message);
        }
        Assert.True(Directory.GetFiles(_dir.Path).Length == 0, "an incomplete file is deleted");
        using (var writer = new SafeTensorsStreamWriter(path, tensors))
        {
            writer.Append([1, 2, 3]);
            writer.Append([4, 5, 6, 7]);
            writer.Append([8, 9, 10]);
            writer.Complete();
        }
        using var reader = SafeTensorsReader.Open(path);
        var b = new float[3];
        reader.ReadFloat32("b", 1, b);
        Assert.True(b.SequenceEqual([8f, 9f, 10f]), $"b[1..4] read [{string.Join(", ", b)}]");
    }

    /// <summary>Reports on the caller's thread, at once (<see cref="Progress{T}"/> posts to the thread pool).</summary>
    private sealed class Reporter<T>(Action<T> report) : IProgress<T>
    {
        public void Report(T value) => report(value);
    }
}
