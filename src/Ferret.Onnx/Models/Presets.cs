using Ferret.Core.Parameters;
using Ferret.Onnx.Weights;

namespace Ferret.Onnx.Models;

/// <summary>
/// A named model with seeded random weights, for tests, demos and benchmarks (no hub downloads here), and the
/// initializer that draws them.
/// </summary>
public sealed record Preset(string Name, string Description, ModelConfig Config, WeightInitializer Initializer = WeightInitializer.SystemRandom);

/// <summary>
/// The built-in presets. The byte-level tokenizer maps UTF-8 bytes to ids 0..255 with BOS 256, EOS 257 and
/// PAD 258, so byte-level presets have a vocabulary of 259. The paper-scale presets keep LLaMA's SentencePiece
/// vocabulary size (32,000) with the byte tokenizer: ids 259 and up exist in the embeddings and the head but no
/// text maps to them, so every shape and cost is the real model's.
/// </summary>
public static class Presets
{
    public const int ByteVocabulary = 259;
    public const int ByteBos = 256;
    public const int ByteEos = 257;
    public const int BytePad = 258;

    public const int LlamaVocabulary = 32000;

    public static IReadOnlyList<Preset> All { get; } =
    [
        new("tiny-llama", "LLaMA, 3.0 M parameters: hidden 256, 4 layers, 8 heads (4 key-value), byte tokenizer", Llama(256, 688, 4, 8, 4, ByteVocabulary)),
        new("mini-llama", "LLaMA, 0.8 M parameters: hidden 128, 4 layers, 4 heads (2 key-value), byte tokenizer; the demo's base model is this shape, pretrained", Llama(128, 344, 4, 4, 2, ByteVocabulary)),
        new("small-llama", "LLaMA, 23.5 M parameters: hidden 512, 8 layers, 8 heads (4 key-value), byte tokenizer", Llama(512, 1376, 8, 8, 4, ByteVocabulary)),
        new("bench-llama", "LLaMA of the training-speed anchor: hidden 256, intermediate 688, 4 layers, 8 heads, 4 key-value heads, vocabulary 4096", Llama(256, 688, 4, 8, 4, 4096)),
        new("tiny-gpt2", "GPT-2, 0.9 M parameters: 128 wide, 4 layers, 4 heads, byte tokenizer", new ModelConfig
        {
            Family = ModelFamily.Gpt2,
            VocabSize = ByteVocabulary,
            HiddenSize = 128,
            IntermediateSize = 512,
            Layers = 4,
            Heads = 4,
            KeyValueHeads = 4,
            NormEpsilon = 1e-5,
            MaxPositions = 512,
            TieWordEmbeddings = true,
            Activation = "gelu_new",
            BosTokenId = ByteBos,
            EosTokenId = ByteEos,
            PadTokenId = BytePad,
        }),
        new("llama-374m", "LLaMA, 374 M parameters: hidden 1024, intermediate 2816, 24 layers, 16 heads, vocabulary 32000 (byte tokenizer)",
            Llama(1024, 2816, 24, 16, 16, LlamaVocabulary) with { MaxPositions = 2048 }, WeightInitializer.Philox),
        new("tinyllama-1.1b", "TinyLlama's shape, 1.10 B parameters: hidden 2048, intermediate 5632, 22 layers, 32 heads (4 key-value), vocabulary 32000 (byte tokenizer)",
            Llama(2048, 5632, 22, 32, 4, LlamaVocabulary) with { MaxPositions = 2048, NormEpsilon = 1e-5 }, WeightInitializer.Philox),
        new("llama2-7b", "LLaMA2-7B's shape, 6.74 B parameters: hidden 4096, intermediate 11008, 32 layers, 32 heads, vocabulary 32000 (byte tokenizer)",
            Llama(4096, 11008, 32, 32, 32, LlamaVocabulary) with { MaxPositions = 4096, NormEpsilon = 1e-5 }, WeightInitializer.Philox),
    ];

    public static Preset Get(string name) =>
        All.FirstOrDefault(p => p.Name == name) ?? throw new ArgumentException($"Unknown preset '{name}': expected one of {string.Join(", ", All.Select(p => p.Name))}.");

    private static ModelConfig Llama(int hidden, int intermediate, int layers, int heads, int kvHeads, int vocab) => new()
    {
        Family = ModelFamily.Llama,
        VocabSize = vocab,
        HiddenSize = hidden,
        IntermediateSize = intermediate,
        Layers = layers,
        Heads = heads,
        KeyValueHeads = kvHeads,
        NormEpsilon = 1e-6,
        RopeTheta = 10000,
        MaxPositions = 512,
        TieWordEmbeddings = false,
        Activation = "silu",
        BosTokenId = ByteBos,
        EosTokenId = ByteEos,
        PadTokenId = BytePad,
    };

    /// <summary>
    /// Hugging Face's initialisation, seeded (<see cref="WeightInitializer.SystemRandom"/>): weights and embeddings
    /// normal(0, initializer_range), norm scales 1, biases 0; GPT-2's residual projections scaled by 1/sqrt(2 * layers).
    /// Deterministic for a seed. The whole vector in one array: for models of up to <see cref="Array.MaxLength"/> values.
    /// </summary>
    public static float[] Initialize(DecoderBuilder builder, int seed)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var layout = new ParameterLayout(builder.Parameters().Select(p => (p.Name, (IReadOnlyList<long>)p.Shape)));
        if (layout.TotalLength > Array.MaxLength)
            throw new NotSupportedException($"A model of {layout.TotalLength:N0} parameters does not fit one array; stream it with {nameof(WeightRoles)}.{nameof(WeightRoles.Open)}.");
        var flat = new float[layout.TotalLength];
        using var source = new SystemRandomWeights(builder.Config, layout, seed);
        for (int i = 0; i < layout.Tensors.Count; i++)
        {
            var t = layout.Tensors[i];
            source.Read(i, 0, flat.AsMemory((int)t.Offset, (int)t.Length));
        }
        return flat;
    }
}
