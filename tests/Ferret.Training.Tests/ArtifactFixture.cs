using System.Text.Json.Nodes;
using Ferret.Core.Parameters;
using Ferret.Onnx.Artifacts;
using Ferret.Onnx.Checkpoints;
using Ferret.Onnx.Export;
using Ferret.Onnx.Models;

namespace Ferret.Training.Tests;

/// <summary>Preset packages exported once per test run into a temporary folder.</summary>
public sealed class ArtifactFixture : IDisposable
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "ferret-artifacts-" + Guid.NewGuid().ToString("N"));
    private readonly Dictionary<string, ArtifactPackage> _packages = [];
    private readonly Lock _lock = new();

    public ArtifactPackage Get(string preset)
    {
        lock (_lock)
        {
            if (!_packages.TryGetValue(preset, out var p))
                _packages[preset] = p = ModelExporter.Export(new ModelSource.FromPreset(preset, 1), Path.Combine(_root, preset), overwrite: false);
            return p;
        }
    }

    /// <summary>
    /// The same model exported with <c>--recompute layers</c>. Besides the presets, <c>tied-llama</c> is a small LLaMA
    /// whose head shares the token table (from a Hugging Face folder; no preset ties a LLaMA head).
    /// </summary>
    public ArtifactPackage Get(string model, bool recompute)
    {
        if (model != TiedLlama && !recompute)
            return Get(model);
        lock (_lock)
        {
            var key = model + (recompute ? "-recompute" : "");
            if (!_packages.TryGetValue(key, out var p))
            {
                var source = model == TiedLlama ? new ModelSource.FromHuggingFace(TiedLlamaFolder(), ByteTokenizer: true) : (ModelSource)new ModelSource.FromPreset(model, 1);
                var options = new ExportOptions { Recompute = recompute ? RecomputeMode.Layers : RecomputeMode.None };
                _packages[key] = p = ModelExporter.Export(source, Path.Combine(_root, key), overwrite: false, options: options);
            }
            return p;
        }
    }

    public const string TiedLlama = "tied-llama";

    private string TiedLlamaFolder()
    {
        var dir = Path.Combine(_root, "hf-" + TiedLlama);
        if (Directory.Exists(dir))
            return dir;
        var config = new JsonObject
        {
            ["model_type"] = "llama",
            ["vocab_size"] = Presets.ByteVocabulary,
            ["hidden_size"] = 32,
            ["intermediate_size"] = 64,
            ["num_hidden_layers"] = 3,
            ["num_attention_heads"] = 4,
            ["num_key_value_heads"] = 2,
            ["rms_norm_eps"] = 1e-6,
            ["max_position_embeddings"] = 64,
            ["tie_word_embeddings"] = true,
        };
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "config.json"), config.ToJsonString());
        var builder = DecoderBuilder.For(ModelConfig.FromHuggingFace(config, "test"));
        var flat = Presets.Initialize(builder, 5);
        var layout = new ParameterLayout(builder.Parameters().Select(t => (t.Name, (IReadOnlyList<long>)t.Shape)));
        SafeTensorsWriter.Write(Path.Combine(dir, "model.safetensors"), layout.Tensors.Select(t => (t.Name, t.Shape, (ReadOnlyMemory<float>)flat.AsMemory((int)t.Offset, (int)t.Length))));
        return dir;
    }

    public void Dispose()
    {
        if (Directory.Exists(_root))
            Directory.Delete(_root, recursive: true);
    }
}
