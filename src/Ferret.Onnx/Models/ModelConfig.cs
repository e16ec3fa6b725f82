using System.Text.Json;
using System.Text.Json.Nodes;

namespace Ferret.Onnx.Models;

/// <summary>The decoder families Ferret.NET builds.</summary>
public enum ModelFamily
{
    Llama,
    Gpt2,
}

/// <summary>
/// A decoder-only transformer's configuration, read from a Hugging Face <c>config.json</c> (LLaMA-family
/// and GPT-2 field names) or made by a preset.
/// </summary>
public sealed record ModelConfig
{
    public ModelFamily Family { get; init; }

    public int VocabSize { get; init; }

    public int HiddenSize { get; init; }

    public int IntermediateSize { get; init; }

    public int Layers { get; init; }

    public int Heads { get; init; }

    public int KeyValueHeads { get; init; }

    public int HeadDim => HiddenSize / Heads;

    /// <summary>RMSNorm epsilon (LLaMA) or LayerNorm epsilon (GPT-2).</summary>
    public double NormEpsilon { get; init; } = 1e-6;

    public double RopeTheta { get; init; } = 10000;

    public int MaxPositions { get; init; } = 2048;

    public bool TieWordEmbeddings { get; init; }

    /// <summary><c>silu</c> for LLaMA; <c>gelu_new</c> for GPT-2.</summary>
    public string Activation { get; init; } = "silu";

    public double InitializerRange { get; init; } = 0.02;

    public int? BosTokenId { get; init; }

    public int? EosTokenId { get; init; }

    public int? PadTokenId { get; init; }

    /// <summary>Checks the numbers fit together; the message names the field.</summary>
    public void Validate(string source)
    {
        void Require(bool ok, string field, object value, string rule)
        {
            if (!ok)
                throw new InvalidDataException($"{source}: '{field}' = {value} is invalid ({rule}).");
        }
        Require(VocabSize > 0, "vocab_size", VocabSize, "positive");
        Require(HiddenSize > 0, "hidden_size", HiddenSize, "positive");
        Require(IntermediateSize > 0, "intermediate_size", IntermediateSize, "positive");
        Require(Layers > 0, "num_hidden_layers", Layers, "positive");
        Require(Heads > 0 && HiddenSize % Heads == 0, "num_attention_heads", Heads, $"positive and dividing hidden_size {HiddenSize}");
        Require(KeyValueHeads > 0 && Heads % KeyValueHeads == 0, "num_key_value_heads", KeyValueHeads, $"positive and dividing num_attention_heads {Heads}");
        Require(Family != ModelFamily.Llama || HeadDim % 2 == 0, "head_dim", HeadDim, "even, for rotary embeddings");
        Require(NormEpsilon > 0, "rms_norm_eps", NormEpsilon, "positive");
        Require(RopeTheta > 0, "rope_theta", RopeTheta, "positive");
        Require(MaxPositions > 0, "max_position_embeddings", MaxPositions, "positive");
        Require(Activation is "silu" or "gelu_new" or "gelu", "hidden_act", Activation, "silu, gelu or gelu_new");
    }

    /// <summary>Reads a Hugging Face <c>config.json</c>.</summary>
    public static ModelConfig LoadHuggingFace(string configPath)
    {
        if (!File.Exists(configPath))
            throw new FileNotFoundException($"'{configPath}' does not exist: a Hugging Face model folder needs config.json.", configPath);
        JsonObject json;
        try
        {
            json = JsonNode.Parse(File.ReadAllText(configPath)) as JsonObject ?? throw new InvalidDataException($"'{configPath}' is not a JSON object.");
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"'{configPath}' is not valid JSON: {e.Message}", e);
        }
        return FromHuggingFace(json, configPath);
    }

    public static ModelConfig FromHuggingFace(JsonObject json, string source)
    {
        ArgumentNullException.ThrowIfNull(json);
        string modelType = Get<string>(json, source, "model_type") ?? throw new InvalidDataException($"{source}: 'model_type' is missing.");
        ModelConfig config = modelType switch
        {
            "llama" or "mistral" or "qwen2" => new ModelConfig
            {
                Family = ModelFamily.Llama,
                VocabSize = Required<int>(json, source, "vocab_size"),
                HiddenSize = Required<int>(json, source, "hidden_size"),
                IntermediateSize = Required<int>(json, source, "intermediate_size"),
                Layers = Required<int>(json, source, "num_hidden_layers"),
                Heads = Required<int>(json, source, "num_attention_heads"),
                KeyValueHeads = Get<int?>(json, source, "num_key_value_heads") ?? Required<int>(json, source, "num_attention_heads"),
                NormEpsilon = Get<double?>(json, source, "rms_norm_eps") ?? 1e-6,
                RopeTheta = Get<double?>(json, source, "rope_theta") ?? 10000,
                MaxPositions = Get<int?>(json, source, "max_position_embeddings") ?? 2048,
                TieWordEmbeddings = Get<bool?>(json, source, "tie_word_embeddings") ?? false,
                Activation = Get<string>(json, source, "hidden_act") ?? "silu",
                InitializerRange = Get<double?>(json, source, "initializer_range") ?? 0.02,
                BosTokenId = TokenId(json, source, "bos_token_id"),
                EosTokenId = TokenId(json, source, "eos_token_id"),
                PadTokenId = TokenId(json, source, "pad_token_id"),
            },
            "gpt2" => new ModelConfig
            {
                Family = ModelFamily.Gpt2,
                VocabSize = Required<int>(json, source, "vocab_size"),
                HiddenSize = Required<int>(json, source, "n_embd"),
                IntermediateSize = Get<int?>(json, source, "n_inner") ?? (4 * Required<int>(json, source, "n_embd")),
                Layers = Required<int>(json, source, "n_layer"),
                Heads = Required<int>(json, source, "n_head"),
                KeyValueHeads = Required<int>(json, source, "n_head"),
                NormEpsilon = Get<double?>(json, source, "layer_norm_epsilon") ?? 1e-5,
                MaxPositions = Get<int?>(json, source, "n_positions") ?? 1024,
                TieWordEmbeddings = true,
                Activation = Get<string>(json, source, "activation_function") ?? "gelu_new",
                InitializerRange = Get<double?>(json, source, "initializer_range") ?? 0.02,
                BosTokenId = TokenId(json, source, "bos_token_id"),
                EosTokenId = TokenId(json, source, "eos_token_id"),
                PadTokenId = TokenId(json, source, "pad_token_id"),
            },
            _ => throw new NotSupportedException($"{source}: model_type '{modelType}' is not supported (llama, mistral, qwen2, gpt2)."),
        };
        if (config.Family == ModelFamily.Llama && Get<int?>(json, source, "head_dim") is int hd && hd != config.HeadDim)
            throw new NotSupportedException($"{source}: 'head_dim' = {hd} differs from hidden_size / num_attention_heads = {config.HeadDim}; such models are not supported.");
        config.Validate(source);
        return config;
    }

    private static T Required<T>(JsonObject json, string source, string field) =>
        json.TryGetPropertyValue(field, out var node) && node is not null
            ? Get<T>(json, source, field)!
            : throw new InvalidDataException($"{source}: required field '{field}' is missing.");

    private static T? Get<T>(JsonObject json, string source, string field)
    {
        if (!json.TryGetPropertyValue(field, out var node) || node is null)
            return default;
        try
        {
            return node.Deserialize<T>();
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or FormatException)
        {
            throw new InvalidDataException($"{source}: field '{field}' = {node.ToJsonString()} is not a {typeof(T).Name.Replace("Nullable`1", Nullable.GetUnderlyingType(typeof(T))?.Name ?? "", StringComparison.Ordinal)}.", e);
        }
    }

    // Some configs list several EOS ids; the first is the one generation stops on.
    private static int? TokenId(JsonObject json, string source, string field) =>
        json.TryGetPropertyValue(field, out var node) && node is JsonArray a ? a.FirstOrDefault()?.GetValue<int>() : Get<int?>(json, source, field);

    /// <summary>The configuration as the manifest records it (Hugging Face field names).</summary>
    public JsonObject ToJson() => new()
    {
        ["model_type"] = Family == ModelFamily.Llama ? "llama" : "gpt2",
        ["vocab_size"] = VocabSize,
        ["hidden_size"] = HiddenSize,
        ["intermediate_size"] = IntermediateSize,
        ["num_hidden_layers"] = Layers,
        ["num_attention_heads"] = Heads,
        ["num_key_value_heads"] = KeyValueHeads,
        ["norm_eps"] = NormEpsilon,
        ["rope_theta"] = RopeTheta,
        ["max_position_embeddings"] = MaxPositions,
        ["tie_word_embeddings"] = TieWordEmbeddings,
        ["hidden_act"] = Activation,
        ["bos_token_id"] = BosTokenId,
        ["eos_token_id"] = EosTokenId,
        ["pad_token_id"] = PadTokenId,
    };

    /// <summary>
    /// The configuration as a Hugging Face <c>config.json</c> that <c>transformers</c> loads
    /// (<c>LlamaForCausalLM</c> or <c>GPT2LMHeadModel</c>); <see cref="FromHuggingFace"/> reads it back.
    /// </summary>
    public JsonObject ToHuggingFaceJson() => Family == ModelFamily.Llama
        ? new JsonObject
        {
            ["architectures"] = new JsonArray("LlamaForCausalLM"),
            ["model_type"] = "llama",
            ["vocab_size"] = VocabSize,
            ["hidden_size"] = HiddenSize,
            ["intermediate_size"] = IntermediateSize,
            ["num_hidden_layers"] = Layers,
            ["num_attention_heads"] = Heads,
            ["num_key_value_heads"] = KeyValueHeads,
            ["head_dim"] = HeadDim,
            ["rms_norm_eps"] = NormEpsilon,
            ["rope_theta"] = RopeTheta,
            ["max_position_embeddings"] = MaxPositions,
            ["tie_word_embeddings"] = TieWordEmbeddings,
            ["hidden_act"] = Activation,
            ["initializer_range"] = InitializerRange,
            ["attention_bias"] = false,
            ["mlp_bias"] = false,
            ["bos_token_id"] = BosTokenId,
            ["eos_token_id"] = EosTokenId,
            ["pad_token_id"] = PadTokenId,
            ["torch_dtype"] = "float32",
        }
        : new JsonObject
        {
            ["architectures"] = new JsonArray("GPT2LMHeadModel"),
            ["model_type"] = "gpt2",
            ["vocab_size"] = VocabSize,
            ["n_embd"] = HiddenSize,
            ["n_inner"] = IntermediateSize,
            ["n_layer"] = Layers,
            ["n_head"] = Heads,
            ["n_positions"] = MaxPositions,
            ["n_ctx"] = MaxPositions,
            ["layer_norm_epsilon"] = NormEpsilon,
            ["activation_function"] = Activation,
            ["initializer_range"] = InitializerRange,
            ["tie_word_embeddings"] = true,
            ["bos_token_id"] = BosTokenId,
            ["eos_token_id"] = EosTokenId,
            ["pad_token_id"] = PadTokenId,
            ["torch_dtype"] = "float32",
        };

    /// <summary>Reads back <see cref="ToJson"/>.</summary>
    public static ModelConfig FromManifestJson(JsonObject json, string source)
    {
        ArgumentNullException.ThrowIfNull(json);
        var type = json["model_type"]?.GetValue<string>();
        var c = new ModelConfig
        {
            Family = type == "gpt2" ? ModelFamily.Gpt2 : type == "llama" ? ModelFamily.Llama : throw new InvalidDataException($"{source}: unknown model_type '{type}'."),
            VocabSize = Required<int>(json, source, "vocab_size"),
            HiddenSize = Required<int>(json, source, "hidden_size"),
            IntermediateSize = Required<int>(json, source, "intermediate_size"),
            Layers = Required<int>(json, source, "num_hidden_layers"),
            Heads = Required<int>(json, source, "num_attention_heads"),
            KeyValueHeads = Required<int>(json, source, "num_key_value_heads"),
            NormEpsilon = Required<double>(json, source, "norm_eps"),
            RopeTheta = Required<double>(json, source, "rope_theta"),
            MaxPositions = Required<int>(json, source, "max_position_embeddings"),
            TieWordEmbeddings = Required<bool>(json, source, "tie_word_embeddings"),
            Activation = Required<string>(json, source, "hidden_act"),
            BosTokenId = Get<int?>(json, source, "bos_token_id"),
            EosTokenId = Get<int?>(json, source, "eos_token_id"),
            PadTokenId = Get<int?>(json, source, "pad_token_id"),
        };
        c.Validate(source);
        return c;
    }
}
