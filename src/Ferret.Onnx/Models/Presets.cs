namespace Ferret.Onnx.Models;

/// <summary>A named model with seeded random weights, for tests, demos and benchmarks (no hub downloads here).</summary>
public sealed record Preset(string Name, string Description, ModelConfig Config);

/// <summary>
/// The built-in presets. The byte-level tokenizer maps UTF-8 bytes to ids 0..255 with BOS 256, EOS 257 and
/// PAD 258, so byte-level presets have a vocabulary of 259.
/// </summary>
public static class Presets
{
    public const int ByteVocabulary = 259;
    public const int ByteBos = 256;
    public const int ByteEos = 257;
    public const int BytePad = 258;

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
    /// Hugging Face's initialisation, seeded: weights and embeddings normal(0, initializer_range), norm scales 1,
    /// biases 0; GPT-2's residual projections scaled by 1/sqrt(2 * layers). Deterministic for a seed.
    /// </summary>
    public static float[] Initialize(DecoderBuilder builder, int seed)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var parameters = builder.Parameters();
        long total = parameters.Sum(p => p.Shape.Aggregate(1L, (a, d) => a * d));
        var flat = new float[total];
        var rng = new Random(seed);
        double std = builder.Config.InitializerRange;
        long offset = 0;
        foreach (var (name, shape) in parameters)
        {
            long n = shape.Aggregate(1L, (a, d) => a * d);
            var span = flat.AsSpan((int)offset, (int)n);
            if (name.EndsWith("norm.weight", StringComparison.Ordinal) || name.Contains(".ln_", StringComparison.Ordinal) && name.EndsWith(".weight", StringComparison.Ordinal))
            {
                span.Fill(1f);
            }
            else if (name.EndsWith(".bias", StringComparison.Ordinal))
            {
                span.Clear();
            }
            else
            {
                double s = name.EndsWith("c_proj.weight", StringComparison.Ordinal) ? std / Math.Sqrt(2.0 * builder.Config.Layers) : std;
                for (int i = 0; i < span.Length; i++)
                {
                    double u1 = 1.0 - rng.NextDouble();
                    double u2 = rng.NextDouble();
                    span[i] = (float)(s * Math.Sqrt(-2.0 * Math.Log(u1)) * Math.Cos(2.0 * Math.PI * u2));
                }
            }
            offset += n;
        }
        return flat;
    }
}
