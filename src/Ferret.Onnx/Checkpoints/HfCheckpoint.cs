using System.Text.Json;
using System.Text.Json.Nodes;
using Ferret.Onnx.Models;

namespace Ferret.Onnx.Checkpoints;

/// <summary>
/// A Hugging Face model folder: <c>config.json</c>, weights in <c>model.safetensors</c> or shards listed by
/// <c>model.safetensors.index.json</c>, and tokenizer files when present.
/// </summary>
public sealed class HfCheckpoint : IDisposable, ITensorReader
{
    private static readonly string[] TokenizerFileNames =
        ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json", "merges.txt", "tokenizer.model", "generation_config.json"];

    private readonly Dictionary<string, SafeTensorsReader> _shards = new(StringComparer.Ordinal);
    private readonly Dictionary<string, SafeTensorsReader> _byTensor = new(StringComparer.Ordinal);

    private HfCheckpoint(string directory, ModelConfig config)
    {
        Directory = directory;
        Config = config;
    }

    public string Directory { get; }

    public ModelConfig Config { get; }

    public IReadOnlyCollection<string> TensorNames => _byTensor.Keys;

    public IReadOnlyList<string> TokenizerFiles { get; private set; } = [];

    public static HfCheckpoint Open(string modelDirectory)
    {
        if (!System.IO.Directory.Exists(modelDirectory))
            throw new DirectoryNotFoundException($"Model folder '{modelDirectory}' does not exist.");
        var config = ModelConfig.LoadHuggingFace(Path.Combine(modelDirectory, "config.json"));
        var checkpoint = new HfCheckpoint(Path.GetFullPath(modelDirectory), config);
        try
        {
            var single = Path.Combine(modelDirectory, "model.safetensors");
            var index = Path.Combine(modelDirectory, "model.safetensors.index.json");
            if (File.Exists(index))
                checkpoint.OpenSharded(index);
            else if (File.Exists(single))
                checkpoint.AddShard(single, null);
            else
                throw new FileNotFoundException($"Model folder '{modelDirectory}' has neither model.safetensors nor model.safetensors.index.json.");
            checkpoint.TokenizerFiles = TokenizerFileNames.Select(f => Path.Combine(checkpoint.Directory, f)).Where(File.Exists).ToList();
            return checkpoint;
        }
        catch
        {
            checkpoint.Dispose();
            throw;
        }
    }

    private void OpenSharded(string indexPath)
    {
        JsonObject map;
        try
        {
            map = (JsonNode.Parse(File.ReadAllText(indexPath)) as JsonObject)?["weight_map"] as JsonObject
                ?? throw new InvalidDataException($"'{indexPath}' has no 'weight_map' object.");
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"'{indexPath}' is not valid JSON: {e.Message}", e);
        }
        foreach (var group in map.GroupBy(kv => kv.Value?.GetValue<string>() ?? throw new InvalidDataException($"'{indexPath}': tensor '{kv.Key}' maps to no shard.")))
        {
            var shard = Path.Combine(Directory, group.Key);
            if (!File.Exists(shard))
                throw new FileNotFoundException($"'{indexPath}' lists shard '{group.Key}', which does not exist.", shard);
            AddShard(shard, group.Select(kv => kv.Key).ToList());
        }
    }

    private void AddShard(string path, IReadOnlyList<string>? expected)
    {
        var reader = SafeTensorsReader.Open(path);
        _shards[path] = reader;
        if (expected is null)
        {
            foreach (var t in reader.Tensors)
                _byTensor[t.Name] = reader;
            return;
        }
        foreach (var name in expected)
        {
            if (!reader.Contains(name))
                throw new InvalidDataException($"The index maps tensor '{name}' to '{path}', which does not contain it.");
            _byTensor[name] = reader;
        }
    }

    public bool Contains(string name) => _byTensor.ContainsKey(name);

    public SafeTensorInfo GetInfo(string name) =>
        _byTensor.TryGetValue(name, out var r) ? r.GetInfo(name) : throw new KeyNotFoundException($"Model folder '{Directory}' has no tensor '{name}'.");

    public void ReadFloat32(string name, Span<float> destination)
    {
        if (!_byTensor.TryGetValue(name, out var r))
            throw new KeyNotFoundException($"Model folder '{Directory}' has no tensor '{name}'.");
        r.ReadFloat32(name, destination);
    }

    public void ReadFloat32(string name, long start, Span<float> destination)
    {
        if (!_byTensor.TryGetValue(name, out var r))
            throw new KeyNotFoundException($"Model folder '{Directory}' has no tensor '{name}'.");
        r.ReadFloat32(name, start, destination);
    }

    public string FileOf(string name) => _byTensor.TryGetValue(name, out var r) ? r.Path : Directory;

    public void Dispose()
    {
        foreach (var s in _shards.Values)
            s.Dispose();
        _shards.Clear();
    }
}
