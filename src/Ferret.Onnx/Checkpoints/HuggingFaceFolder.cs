using System.Text.Json;
using System.Text.Json.Nodes;
using Ferret.Onnx.Artifacts;

namespace Ferret.Onnx.Checkpoints;

/// <summary>
/// Writes a model as a Hugging Face folder that <c>transformers</c> loads with <c>AutoModelForCausalLM</c>:
/// <c>config.json</c>, <c>model.safetensors</c> (float32, Hugging Face names and layout),
/// <c>generation_config.json</c> and the tokenizer files (the package's own, or the byte tokenizer as a
/// byte-level BPE <c>tokenizer.json</c>). Staged beside the target and renamed into place.
/// </summary>
public static class HuggingFaceFolder
{
    public const string WeightsFile = "model.safetensors";

    internal static JsonSerializerOptions Indented { get; } = new() { WriteIndented = true };

    /// <summary>Writes <paramref name="parameters"/> (flat, in the package's layout) with the package's config and tokenizer.</summary>
    public static void Write(ArtifactPackage package, ReadOnlyMemory<float> parameters, string directory, bool overwrite,
        IReadOnlyDictionary<string, string>? metadata = null)
    {
        using var staged = Stage(package, parameters, directory, overwrite, metadata);
        staged.Commit();
    }

    /// <summary>Writes everything into the staging folder; the caller commits (or disposes to discard).</summary>
    internal static StagedDirectory Stage(ArtifactPackage package, ReadOnlyMemory<float> parameters, string directory, bool overwrite,
        IReadOnlyDictionary<string, string>? metadata)
    {
        ArgumentNullException.ThrowIfNull(package);
        if (parameters.Length != package.Layout.TotalLength)
            throw new ArgumentException($"{parameters.Length:N0} parameters for a model of {package.Layout.TotalLength:N0}.", nameof(parameters));
        var staged = new StagedDirectory(directory, overwrite);
        try
        {
            var config = package.Config;
            File.WriteAllText(staged.PathOf("config.json"), config.ToHuggingFaceJson().ToJsonString(Indented));
            File.WriteAllText(staged.PathOf("generation_config.json"), new JsonObject
            {
                ["bos_token_id"] = config.BosTokenId,
                ["eos_token_id"] = config.EosTokenId,
                ["pad_token_id"] = config.PadTokenId,
            }.ToJsonString(Indented));
            var meta = new Dictionary<string, string>(metadata ?? new Dictionary<string, string>(), StringComparer.Ordinal)
            {
                ["format"] = "pt",
                ["producer"] = "Ferret.NET",
            };
            SafeTensorsWriter.Write(staged.PathOf(WeightsFile),
                package.Layout.Tensors.Select(t => (t.Name, t.Shape, parameters.Slice((int)t.Offset, (int)t.Length))), meta);
            var tokenizer = package.Manifest.Tokenizer;
            if (tokenizer.Kind == "byte")
            {
                ByteTokenizerFiles.Write(staged.Staging, tokenizer.BosTokenId ?? 256, tokenizer.EosTokenId ?? 257, tokenizer.PadTokenId ?? 258, config.MaxPositions);
            }
            else
            {
                foreach (var file in tokenizer.Files)
                    File.Copy(Path.Combine(package.Directory, file), staged.PathOf(file), overwrite: true);
            }
            return staged;
        }
        catch
        {
            staged.Dispose();
            throw;
        }
    }
}
