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
/// Graphs for training with activation recompute (<c>ferret export --recompute layers</c>), beside the whole-model
/// graphs: a runtime runs them block by block, keeping only the hidden rows at layer boundaries and recomputing
/// each layer's activations in its backward pass. <see cref="LayerForward"/> and <see cref="LayerBackward"/> serve
/// every layer: layer <c>l</c> binds parameter <c>Layers[l][j]</c> to the graph input <c>LayerParameters[j]</c>.
/// Backward graphs return <c>&lt;name&gt;_grad</c> like <c>train.onnx</c>, and <c>hidden_grad</c> for the block before.
/// </summary>
/// <param name="Mode"><c>layers</c>: one checkpoint per decoder layer.</param>
/// <param name="Prologue">Token ids and mask to <c>hidden</c> and the per-batch tensors the layers share.</param>
/// <param name="LayerForward">One decoder layer: <c>hidden</c> to <c>hidden_out</c>.</param>
/// <param name="LayerBackward">One decoder layer's vector-Jacobian product: <c>hidden</c> and <c>hidden_out_grad</c> to <c>hidden_grad</c> and the weight gradients.</param>
/// <param name="Head">Final norm, LM head and loss with its gradients: <c>loss</c>, <c>hidden_grad</c> and the head's weight gradients.</param>
/// <param name="EmbeddingBackward">The prologue's vector-Jacobian product: <c>hidden_grad</c> to the embedding tables' gradients.</param>
/// <param name="LayerParameters">The layer graphs' weight inputs, relative to a layer.</param>
/// <param name="Layers">Per layer, the parameter bound to each of <paramref name="LayerParameters"/>.</param>
public sealed record RecomputeDescription(
    string Mode,
    GraphDescription Prologue,
    GraphDescription LayerForward,
    GraphDescription LayerBackward,
    GraphDescription Head,
    GraphDescription EmbeddingBackward,
    IReadOnlyList<string> LayerParameters,
    IReadOnlyList<IReadOnlyList<string>> Layers)
{
    public const string LayersMode = "layers";

    [JsonIgnore]
    public IEnumerable<GraphDescription> Graphs => [Prologue, LayerForward, LayerBackward, Head, EmbeddingBackward];
}

/// <summary>
/// The <c>manifest.json</c> of an artifact package (architecture.md). <paramref name="Initializer"/> names how a
/// preset's seeded weights were drawn (<c>system-random-box-muller</c>, <c>philox-box-muller</c>); null for
/// weights read from a checkpoint.
/// weights read from a checkpoint. <see cref="FileSha256"/> names every other file of the package with its lower-case
/// hex SHA-256 (written at export; absent from packages exported before it). <paramref name="Precision"/> is
/// <c>bf16-mixed</c> when the training graph's linear layers compute in bf16 (a GPU's tensor cores); absent: float32.
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
    string? Initializer = null,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] RecomputeDescription? Recompute = null,
    IReadOnlyDictionary<string, string>? FileSha256 = null,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Precision = null)
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
