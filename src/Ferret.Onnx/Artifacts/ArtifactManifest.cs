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
/// The <c>manifest.json</c> of an artifact package (architecture.md). <paramref name="Initializer"/> names how a
/// preset's seeded weights were drawn (<c>system-random-box-muller</c>, <c>philox-box-muller</c>); null for
/// weights read from a checkpoint.
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
    string? Initializer = null)
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
        if (m.FormatVersion != CurrentFormatVersion)
            throw new InvalidDataException($"'{source}' has formatVersion {m.FormatVersion}; this Ferret.NET reads version {CurrentFormatVersion}.");
        return m;
    }
}
