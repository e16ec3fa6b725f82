using System.Text.Json.Nodes;
using Ferret.Core.Parameters;
using Ferret.Onnx.Artifacts;
using Ferret.Onnx.Checkpoints;
using Ferret.Onnx.Export;
using Ferret.Onnx.Models;

namespace Ferret.Onnx.Tests.Artifacts;

public sealed class ExportTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    private static JsonObject LlamaConfig() => new()
    {
        ["model_type"] = "llama",
        ["architectures"] = new JsonArray("LlamaForCausalLM"),
        ["vocab_size"] = 300,
        ["hidden_size"] = 16,
        ["intermediate_size"] = 32,
        ["num_hidden_layers"] = 2,
        ["num_attention_heads"] = 2,
        ["num_key_value_heads"] = 1,
        ["rms_norm_eps"] = 1e-5,
        ["rope_theta"] = 10000.0,
        ["max_position_embeddings"] = 64,
        ["tie_word_embeddings"] = false,
        ["bos_token_id"] = 1,
        ["eos_token_id"] = new JsonArray(2, 3),
        ["torch_dtype"] = "bfloat16",
    };

    /// <summary>A Hugging Face folder with seeded weights; returns them flat in layout order.</summary>
    private float[] WriteHfFolder(string dir, JsonObject config, int shards = 1, Func<string, bool>? keep = null, (string Name, long[] Shape)? extra = null)
    {
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "config.json"), config.ToJsonString());
        var builder = DecoderBuilder.For(ModelConfig.FromHuggingFace(config, "test"));
        var flat = Presets.Initialize(builder, 7);
        var layout = new ParameterLayout(builder.Parameters().Select(p => (p.Name, (IReadOnlyList<long>)p.Shape)));
        var tensors = layout.Tensors.Where(t => keep?.Invoke(t.Name) ?? true)
            .Select(t => (t.Name, t.Shape, (ReadOnlyMemory<float>)flat.AsMemory((int)t.Offset, (int)t.Length))).ToList();
        if (extra is { } e)
            tensors.Add((e.Name, e.Shape, new float[e.Shape.Aggregate(1L, (a, d) => a * d)]));
        if (shards == 1)
        {
            SafeTensorsWriter.Write(Path.Combine(dir, "model.safetensors"), tensors);
            return flat;
        }
        var map = new JsonObject();
        int per = (tensors.Count + shards - 1) / shards;
        for (int s = 0; s < shards; s++)
        {
            var file = $"model-{s + 1:00000}-of-{shards:00000}.safetensors";
            var part = tensors.Skip(s * per).Take(per).ToList();
            SafeTensorsWriter.Write(Path.Combine(dir, file), part);
            foreach (var t in part)
                map[t.Name] = file;
        }
        File.WriteAllText(Path.Combine(dir, "model.safetensors.index.json"), new JsonObject { ["metadata"] = new JsonObject(), ["weight_map"] = map }.ToJsonString());
        return flat;
    }

    [Fact]
    public void A_hugging_face_folder_exports_with_its_weights_and_tokenizer()
    {
        var hf = _dir.File("hf");
        var flat = WriteHfFolder(hf, LlamaConfig(), shards: 3);
        File.WriteAllText(Path.Combine(hf, "tokenizer.json"), "{\"model\": {\"type\": \"BPE\"}}");
        var package = ModelExporter.Export(new ModelSource.FromHuggingFace(hf, ByteTokenizer: false), _dir.File("out"), overwrite: false);
        Assert.Equal(ModelFingerprint.Compute(flat), package.Manifest.ParametersSha256);
        Assert.Equal(flat, package.LoadParameters());
        Assert.Equal("huggingface", package.Manifest.Tokenizer.Kind);
        Assert.Equal(2, package.Manifest.Tokenizer.EosTokenId);
        Assert.True(File.Exists(Path.Combine(package.Directory, "tokenizer.json")), "expected File.Exists(Path.Combine(package.Directory, \"tokenizer.json\"))");
        Assert.Equal(["input_ids", "attention_mask", "labels"], package.Manifest.Train.Inputs.Take(3));
        Assert.Equal("loss", package.Manifest.Train.Outputs[0]);
        Assert.Equal(package.Manifest.Parameters.Select(p => p.Name + "_grad"), package.Manifest.Train.Outputs.Skip(1));
        Assert.Equal(package.Blocks.Count, package.Manifest.Blocks.Count);
    }

    [Fact]
    public void A_folder_with_a_sentencepiece_model_exports_it_as_the_tokenizer()
    {
        var hf = _dir.File("hf-sp");
        WriteHfFolder(hf, LlamaConfig(), shards: 1);
        File.WriteAllBytes(Path.Combine(hf, "tokenizer.model"), [0x0a, 0x00]);
        File.WriteAllText(Path.Combine(hf, "tokenizer.json"), "{\"model\": {\"type\": \"BPE\", \"byte_fallback\": true}}");
        var package = ModelExporter.Export(new ModelSource.FromHuggingFace(hf, ByteTokenizer: false), _dir.File("out-sp"), overwrite: false);
        Assert.Equal("sentencepiece", package.Manifest.Tokenizer.Kind);
        Assert.Contains("tokenizer.model", package.Manifest.Tokenizer.Files);
        Assert.True(File.Exists(Path.Combine(package.Directory, "tokenizer.model")), "expected File.Exists(Path.Combine(package.Directory, \"tokenizer.model\"))");
    }

    public static TheoryData<string, string> BrokenFolders => new()
    {
        { "no-config", "needs config.json" },
        { "bad-json", "is not valid JSON" },
        { "unknown-architecture", "model_type 'mamba' is not supported" },
        { "missing-field", "'hidden_size' is missing" },
        { "missing-tensor", "has no tensor 'model.layers.1.mlp.up_proj.weight'" },
        { "surplus-tensor", "does not use, e.g. 'model.extra.weight'" },
        { "wrong-shape", "config.json implies [300, 16]" },
        { "truncated", "truncated" },
        { "missing-shard", "lists shard" },
        { "no-tokenizer", "--tokenizer byte" },
    };

    [Theory]
    [MemberData(nameof(BrokenFolders))]
    public void A_broken_folder_fails_clearly_and_leaves_nothing_behind(string defect, string message)
    {
        var hf = _dir.File("hf-" + defect);
        var config = LlamaConfig();
        switch (defect)
        {
            case "no-config":
                WriteHfFolder(hf, config);
                File.Delete(Path.Combine(hf, "config.json"));
                break;
            case "bad-json":
                WriteHfFolder(hf, config);
                File.WriteAllText(Path.Combine(hf, "config.json"), "{ \"model_type\": ");
                break;
            case "unknown-architecture":
                WriteHfFolder(hf, config);
                config["model_type"] = "mamba";
                File.WriteAllText(Path.Combine(hf, "config.json"), config.ToJsonString());
                break;
            case "missing-field":
                WriteHfFolder(hf, config);
                config.Remove("hidden_size");
                File.WriteAllText(Path.Combine(hf, "config.json"), config.ToJsonString());
                break;
            case "missing-tensor":
                WriteHfFolder(hf, config, keep: n => n != "model.layers.1.mlp.up_proj.weight");
                break;
            case "surplus-tensor":
                WriteHfFolder(hf, config, extra: ("model.extra.weight", [4]));
                break;
            case "wrong-shape":
                WriteHfFolder(hf, config);
                config["vocab_size"] = 301;
                config["hidden_size"] = 16;
                File.WriteAllText(Path.Combine(hf, "config.json"), config.ToJsonString());
                message = "config.json implies [301, 16]";
                break;
            case "truncated":
                WriteHfFolder(hf, config);
                var path = Path.Combine(hf, "model.safetensors");
                File.WriteAllBytes(path, File.ReadAllBytes(path)[..^100]);
                break;
            case "missing-shard":
                WriteHfFolder(hf, config, shards: 2);
                File.Delete(Directory.GetFiles(hf, "model-00002-*").Single());
                break;
            case "no-tokenizer":
                WriteHfFolder(hf, config);
                break;
        }
        var output = _dir.File("out-" + defect);
        var e = Assert.ThrowsAny<Exception>(() => ModelExporter.Export(new ModelSource.FromHuggingFace(hf, ByteTokenizer: false), output, overwrite: false));
        Assert.True(e is InvalidDataException or FileNotFoundException or NotSupportedException or KeyNotFoundException, e.GetType().Name + ": " + e.Message);
        Assert.True(e.Message.Contains(message, StringComparison.Ordinal), e.Message);
        Assert.False(Directory.Exists(output), "expected false: Directory.Exists(output)");
        Assert.Empty(Directory.GetDirectories(_dir.Path, ".out-*"));
    }

    [Fact]
    public void An_existing_package_is_kept_unless_overwrite_is_asked()
    {
        var hf = _dir.File("hf");
        WriteHfFolder(hf, LlamaConfig());
        var output = _dir.File("out");
        var first = ModelExporter.Export(new ModelSource.FromHuggingFace(hf, ByteTokenizer: true), output, overwrite: false);
        Assert.Equal("byte", first.Manifest.Tokenizer.Kind);
        Assert.Contains("--overwrite", Assert.Throws<IOException>(() => ModelExporter.Export(new ModelSource.FromHuggingFace(hf, true), output, overwrite: false)).Message);
        var second = ModelExporter.Export(new ModelSource.FromHuggingFace(hf, true), output, overwrite: true);
        Assert.Equal(first.Manifest.ParametersSha256, second.Manifest.ParametersSha256);
    }

    [Fact]
    public void A_damaged_package_is_refused_when_opened_or_loaded()
    {
        var hf = _dir.File("hf");
        WriteHfFolder(hf, LlamaConfig());
        var package = ModelExporter.Export(new ModelSource.FromHuggingFace(hf, ByteTokenizer: true), _dir.File("out"), overwrite: false);
        var manifest = Path.Combine(package.Directory, "manifest.json");

        var text = File.ReadAllText(manifest);
        File.WriteAllText(manifest, text.Replace("\"formatVersion\": 1", "\"formatVersion\": 9", StringComparison.Ordinal));
        Assert.Contains("formatVersion 9", Assert.Throws<InvalidDataException>(() => ArtifactPackage.Open(package.Directory)).Message);
        File.WriteAllText(manifest, text);

        var weights = package.ParametersPath;
        var flat = package.LoadParameters();
        flat[5] += 1;
        SafeTensorsWriter.Write(weights, package.Layout.Tensors.Select(t => (t.Name, t.Shape, (ReadOnlyMemory<float>)flat.AsMemory((int)t.Offset, (int)t.Length))));
        Assert.Contains("fingerprint", Assert.Throws<InvalidDataException>(() => ArtifactPackage.Open(package.Directory).LoadParameters()).Message);

        File.Delete(package.EvalGraphPath);
        Assert.Contains("eval.onnx", Assert.Throws<FileNotFoundException>(() => ArtifactPackage.Open(package.Directory)).Message);
        Assert.Contains("not an artifact package", Assert.Throws<FileNotFoundException>(() => ArtifactPackage.Open(hf)).Message);
    }

    [Fact]
    public void A_cancelled_export_leaves_nothing_and_the_next_export_removes_what_a_killed_one_left()
    {
        var output = _dir.File("tiny");
        using var cancel = new CancellationTokenSource();
        var steps = new List<string>();
        var progress = new SynchronousProgress(m =>
        {
            steps.Add(m);
            if (m == "writing graphs")
                cancel.Cancel();
        });
        Assert.ThrowsAny<OperationCanceledException>(() => ModelExporter.Export(new ModelSource.FromPreset("tiny-gpt2", 1), output, overwrite: false, progress, cancellationToken: cancel.Token));
        Assert.True(!Directory.Exists(output) && Directory.GetDirectories(_dir.Path, ".tiny*").Length == 0,
            $"cancelled after '{steps[^1]}': nothing is left, found {string.Join(", ", Directory.GetDirectories(_dir.Path, ".tiny*"))}");

        // A process killed outright leaves its staging folder; one still writing is never touched.
        var dead = Directory.CreateDirectory(_dir.File($".tiny.partial-{int.MaxValue}-{Guid.NewGuid():N}")).FullName;
        File.WriteAllText(Path.Combine(dead, "train.onnx"), "half");
        var legacy = Directory.CreateDirectory(_dir.File($".tiny.partial-{Guid.NewGuid():N}")).FullName;
        var alive = Directory.CreateDirectory(_dir.File($".tiny.partial-{Environment.ProcessId}-{Guid.NewGuid():N}")).FullName;
        ModelExporter.Export(new ModelSource.FromPreset("tiny-gpt2", 1), output, overwrite: false);
        Assert.True(!Directory.Exists(dead) && !Directory.Exists(legacy), "the next export of the same target removed the folders nobody writes");
        Assert.True(Directory.Exists(alive), "a staging folder of a running process is kept");
        Assert.True(File.Exists(Path.Combine(output, "manifest.json")), "and the export itself completed");
    }

    [Theory]
    [InlineData("parameters")]
    [InlineData("tokenizer")]
    public void A_manifest_missing_a_field_is_refused_naming_the_field(string field)
    {
        var package = ModelExporter.Export(new ModelSource.FromPreset("tiny-gpt2", 1), _dir.File("pkg"), overwrite: false);
        var manifest = Path.Combine(package.Directory, ArtifactManifest.FileName);
        var json = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(manifest))!.AsObject();
        json.Remove(field);
        File.WriteAllText(manifest, json.ToJsonString());
        var e = Assert.Throws<InvalidDataException>(() => ArtifactPackage.Open(package.Directory));
        Assert.True(e.Message.Contains($"field '{field}' is missing", StringComparison.Ordinal) && e.Message.Contains(manifest, StringComparison.Ordinal),
            $"the message names the file and the field: {e.Message}");
    }

    private sealed class SynchronousProgress(Action<string> report) : IProgress<string>
    {
        public void Report(string value) => report(value);
    }
}
