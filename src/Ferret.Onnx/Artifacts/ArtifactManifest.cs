using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;

namespace Ferret.Onnx.Artifacts;

/// <summary>One parameter tensor of the flat vector, as the manifest lists it.</summary>
public sealed record ManifestParameter(string Name, long[] Shape, string DType, long Offset, long Length);

/// <summary>One block of the partition: a run of whole tensors sharing random bases.</summary>
public sealed record ManifestBlock(int Index, long Offset, long Length);

/// <summary>How text becomes token ids: the built-in byte tokenizer or Hugging Face tokenizer files.</summary>
public sealed record TokenizerDescription(string Kind, int VocabSize, int? BosTokenId, int? EosTokenId, int? PadTokenId, IReadOnlyList<string> Files);

/// <summary>A graph file and its input and output names, in order.</summary>
public sealed record GraphDescription(string File, IReadOnlyList<string> Inputs, IReadOnlyList<string> Outputs);

/// <summary>
/// The <c>manifest.json</c> of an artifact package (architecture.md). <see cref="FileSha256"/> names every other
/// file of the package with its lower-case hex SHA-256 (written at export; absent from packages exported before it).
/// </summary>
public sealed record ArtifactManifest(
    int FormatVersion,
    string ModelFamily,
    string? Preset,
    JsonObject ModelConfig,
    int Opset,
    IReadOnlyList<ManifestParameter> Parameters,
    IReadOnlyList<ManifestBlock> Blocks,
    TokenizerDescription Tokenizer,
    GraphDescription Train,
    GraphDescription Eval,
    GraphDescription Logits,
    string ParametersFile,
    string ParametersSha256,
    long ParameterCount,
    string CreatedBy,
    IReadOnlyDictionary<string, RecommendedSettings>? Recommended = null,
    IReadOnlyDictionary<string, string>? FileSha256 = null)
{
    public const int CurrentFormatVersion = 1;
    public const string FileName = "manifest.json";

    internal static JsonSerializerOptions Json { get; } = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        WriteIndented = true,
        DefaultIgnoreCondition = JsonIgnoreCondition.Never,
        RespectNullableAnnotations = true,
    };

    public string ToJson() => JsonSerializer.Serialize(this, Json);

    /// <summary>
    /// The settings an experiment of <paramref name="algorithm"/> starts from on this package: the algorithm's
    /// reference values with the package's recommendation on top (when it has one).
    /// </summary>
    public Ferret.Core.Algorithms.AlgorithmSettings SettingsFor(string algorithm)
    {
        var settings = Ferret.Core.Algorithms.FederatedAlgorithms.ReferenceSettings(algorithm);
        if (Recommended?.GetValueOrDefault(algorithm) is { } r)
            r.ApplyTo(settings);
        return settings;
    }

    public static ArtifactManifest Parse(string json, string source)
    {
        ArtifactManifest? m;
        try
        {
            m = JsonSerializer.Deserialize<ArtifactManifest>(json, Json);
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"'{source}' is not a valid manifest: {e.Message}", e);
        }
        if (m is null)
            throw new InvalidDataException($"'{source}' is empty.");
        // Missing members deserialize as null; name the field instead of failing later inside LINQ.
        foreach (var (field, value) in new (string, object?)[]
        {
            ("modelFamily", m.ModelFamily), ("modelConfig", m.ModelConfig), ("parameters", m.Parameters), ("blocks", m.Blocks), ("tokenizer", m.Tokenizer),
            ("train", m.Train), ("eval", m.Eval), ("logits", m.Logits), ("parametersFile", m.ParametersFile), ("parametersSha256", m.ParametersSha256),
        })
        {
            if (value is null)
                throw new InvalidDataException($"'{source}': field '{field}' is missing.");
        }
        if (m.Parameters.Count == 0 || m.Parameters.Any(p => p is null || p.Name is null || p.Shape is null))
            throw new InvalidDataException($"'{source}': field 'parameters' must list every parameter with its name and shape.");
        if (m.FormatVersion != CurrentFormatVersion)
            throw new InvalidDataException($"'{source}' has formatVersion {m.FormatVersion}; this Ferret.NET reads version {CurrentFormatVersion}.");
        return m;
    }
}
