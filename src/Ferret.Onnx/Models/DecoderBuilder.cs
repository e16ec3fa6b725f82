using Ferret.Onnx.Graphs;

namespace Ferret.Onnx.Models;

/// <summary>Which graph of the artifact package to build.</summary>
public enum GraphKind
{
    /// <summary>Forward pass to the loss (the training graph is this plus its gradients).</summary>
    Loss,

    /// <summary>Forward pass to the logits, for generation.</summary>
    Logits,
}

/// <summary>
/// The decoder-only transformer graph both families share: token ids in, flattened to one row per token,
/// every linear layer a single Gemm over those rows, attention in [batch, kv-heads, group, seq, head-dim]
/// so grouped-query attention broadcasts instead of copying, and the Hugging Face causal-LM loss (logits at t
/// predict the label at t + 1, mean over labels that are not -100). Subclasses mirror the Hugging Face module
/// tree, so parameter names are the Hugging Face names and graph values are named by module path.
/// </summary>
public abstract partial class DecoderBuilder
{
    public const string InputIds = "input_ids";
    public const string AttentionMask = "attention_mask";
    public const string Labels = "labels";
    public const string Loss = "loss";
    public const string LogitsName = "logits";
    public const long IgnoreIndex = -100;

    protected static readonly Dim Batch = new("batch");
    protected static readonly Dim Sequence = new("sequence");
    protected static readonly Dim Tokens = new("tokens");

    protected DecoderBuilder(ModelConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        config.Validate("model configuration");
        Config = config;
    }

    public ModelConfig Config { get; }

    /// <summary>Parameter names and shapes in Hugging Face state-dict order: the flat vector's layout.</summary>
    public abstract IReadOnlyList<(string Name, long[] Shape)> Parameters();

    public static DecoderBuilder For(ModelConfig config) => config?.Family switch
    {
        ModelFamily.Llama => new LlamaBuilder(config),
        ModelFamily.Gpt2 => new Gpt2Builder(config),
        _ => throw new ArgumentException("Unknown model family.", nameof(config)),
    };

    /// <summary>Builds the forward graph: inputs ids, mask, (labels), then every parameter; output loss or logits.</summary>
    public Graph Build(GraphKind kind)
    {
        var b = new GraphBuilder(kind == GraphKind.Loss ? "causal_lm_loss" : "causal_lm_logits");
        var ids = b.Input(InputIds, ElementType.Int64, Batch, Sequence);
        var mask = b.Input(AttentionMask, ElementType.Int64, Batch, Sequence);
        Value? labels = kind == GraphKind.Loss ? b.Input(Labels, ElementType.Int64, Batch, Sequence) : null;
        var p = Parameters().ToDictionary(t => t.Name, t => b.Input(t.Name, ElementType.Float, t.Shape.Select(d => new Dim(d)).ToArray()), StringComparer.Ordinal);
        var context = new Context(b, name => p.TryGetValue(name, out var v) ? v : throw new KeyNotFoundException($"The graph has no parameter '{name}'."), ids, mask, b.Shape(ids));
        var logits = Forward(context);
        if (kind == GraphKind.Logits)
        {
            var shape = b.Concat(0, context.IdsShape, b.Int64s(Config.VocabSize));
            b.Output(b.Op("Reshape", [logits, shape], 1, null, [new TensorType(ElementType.Float, [Batch, Sequence, Config.VocabSize])])[0], LogitsName);
            return b.Build();
        }
        b.Output(CausalLmLoss(b, logits, labels!.Value), Loss);
        return b.Build();
    }

    /// <summary>The Hugging Face causal-LM loss of logit rows [B*S, V] against labels [B, S].</summary>
    private static Value CausalLmLoss(GraphBuilder b, Value logits, Value labels)
    {
        using (b.Scope("loss"))
        {
            // Shift labels left by one (the last position predicts nothing) instead of slicing the logits.
            var next = b.Slice(labels, [1], [long.MaxValue], [1]);
            var shifted = b.Op("Pad", [next, b.Int64s(0, 0, 0, 1), b.Int64Scalar(IgnoreIndex)], 1, null,
                [new TensorType(ElementType.Int64, [Batch, Sequence])])[0];
            var flat = b.Op("Reshape", [shifted, b.Int64s(-1)], 1, null, [new TensorType(ElementType.Int64, [Tokens])])[0];
            return b.SoftmaxCrossEntropyLoss(logits, flat, IgnoreIndex);
        }
    }

    /// <summary>
    /// Values shared by the layers: the builder, parameters (looked up, or made graph inputs on first use in a
    /// block graph) and the per-batch tensors the embedding stage computes once for every layer.
    /// </summary>
    protected sealed class Context(GraphBuilder b, Func<string, Value> parameter, Value? ids, Value? mask, Value? idsShape)
    {
        public const string AttentionBiasName = "attention_bias";
        public const string RotaryCosName = "rotary_cos";
        public const string RotarySinName = "rotary_sin";

        public GraphBuilder B { get; } = b;

        public Value Ids => ids ?? throw new InvalidOperationException("This graph has no token ids.");

        public Value Mask => mask ?? throw new InvalidOperationException("This graph has no attention mask.");

        /// <summary>[B, S] as int64 [2].</summary>
        public Value IdsShape => idsShape ?? throw new InvalidOperationException("This graph has no batch shape.");

        public Value P(string name) => parameter(name);

        /// <summary>Token positions 0..S-1, int64 [S].</summary>
        public Value Positions { get; set; }

        /// <summary>Per-batch float tensors every layer reads, by name (the attention bias, rotary tables).</summary>
        public Dictionary<string, Value> Shared { get; } = new(StringComparer.Ordinal);

        /// <summary>Additive attention mask [B, 1, 1, S, S]: 0 where a query may attend to a key, float32 min elsewhere.</summary>
        public Value AttentionBias
        {
            get => Shared.TryGetValue(AttentionBiasName, out var v) ? v : throw new InvalidOperationException("The attention bias is not built yet.");
            set => Shared[AttentionBiasName] = value;
        }
    }

    /// <summary>The model body: returns logits, one row per token, [B*S, V].</summary>
    private Value Forward(Context c)
    {
        var h = Embed(c);
        for (int i = 0; i < Config.Layers; i++)
            h = Layer(c, h, i);
        return Head(c, h);
    }

    /// <summary>Masks, position tables and the embedding lookup: hidden rows [B*S, H].</summary>
    protected abstract Value Embed(Context c);

    /// <summary>Decoder layer <paramref name="i"/> on hidden rows [B*S, H].</summary>
    protected abstract Value Layer(Context c, Value h, int i);

    /// <summary>Final norm and LM head: logits, one row per token, [B*S, V].</summary>
    protected abstract Value Head(Context c, Value h);

    /// <summary>The name prefix of layer <paramref name="i"/>'s parameters (Hugging Face module path with a dot).</summary>
    public abstract string LayerPrefix(int i);

    /// <summary>Sets <see cref="Context.Positions"/> and <see cref="Context.AttentionBias"/>: causal and padding masks, built once.</summary>
    protected static void BuildMasks(Context c)
    {
        var b = c.B;
        using (b.Scope("model/mask"))
        {
            var seq = b.Squeeze(b.Slice(c.IdsShape, [1], [2], [0]), 0);
            var positions = b.Op("Range", [b.Int64Scalar(0), seq, b.Int64Scalar(1)], 1, null, [new TensorType(ElementType.Int64, [Sequence])])[0];
            var keys = b.Unsqueeze(positions, 0);
            var queries = b.Unsqueeze(positions, 1);
            var causal = b.Not(b.Greater(keys, queries));
            var padding = b.Op("Cast", [c.Mask], 1, new Dictionary<string, AttributeValue> { ["to"] = (long)ElementType.Bool }, [new TensorType(ElementType.Bool, [Batch, Sequence])])[0];
            var allowed = b.And(b.Unsqueeze(causal, 0, 1, 2), b.Unsqueeze(padding, 1, 2, 3));
            c.AttentionBias = b.Where(allowed, b.Scalar(0), b.Scalar(float.MinValue));
            c.Positions = positions;
        }
    }

    /// <summary>A Hugging Face Linear (weight [out, in]) over token rows: x W^T (+ bias).</summary>
    protected static Value Linear(Context c, Value rows, string weight, string? bias = null) =>
        c.B.Gemm(rows, c.P(weight), bias is null ? null : c.P(bias), transB: true);

    /// <summary>A GPT-2 Conv1D (weight [in, out]) over token rows: x W + b.</summary>
    protected static Value Conv1D(Context c, Value rows, string weight, string bias) =>
        c.B.Gemm(rows, c.P(weight), c.P(bias));

    /// <summary>Token rows [B*S, heads*hd] to [B, groups, perGroup, S, hd].</summary>
    protected Value SplitHeads(Context c, Value rows, int groups, int perGroup)
    {
        var b = c.B;
        var shape = b.Concat(0, c.IdsShape, b.Int64s(groups, perGroup, Config.HeadDim));
        var x = b.Op("Reshape", [rows, shape], 1, null, [new TensorType(ElementType.Float, [Batch, Sequence, groups, perGroup, Config.HeadDim])])[0];
        return b.Transpose(x, 0, 2, 3, 1, 4);
    }

    /// <summary>Scaled dot-product attention with the precomputed bias; returns token rows [B*S, H].</summary>
    protected Value Attention(Context c, Value q, Value k, Value v, bool scaleAfter)
    {
        var b = c.B;
        var kt = b.Transpose(k, 0, 1, 2, 4, 3);
        var scale = b.Scalar(1.0 / Math.Sqrt(Config.HeadDim));
        var scores = scaleAfter ? b.Mul(b.MatMul(q, kt), scale) : b.Div(b.MatMul(q, kt), b.Scalar(Math.Sqrt(Config.HeadDim)));
        var probabilities = b.Softmax(b.Add(scores, c.AttentionBias), -1);
        var context = b.MatMul(probabilities, v);
        var merged = b.Transpose(context, 0, 3, 1, 2, 4);
        return b.Op("Reshape", [merged, b.Int64s(-1, Config.Heads * Config.HeadDim)], 1, null,
            [new TensorType(ElementType.Float, [Tokens, Config.Heads * Config.HeadDim])])[0];
    }

    /// <summary>Embedding lookup of the token ids as rows [B*S, H].</summary>
    protected static Value EmbedRows(Context c, string table)
    {
        var b = c.B;
        var flatIds = b.Op("Reshape", [c.Ids, b.Int64s(-1)], 1, null, [new TensorType(ElementType.Int64, [Tokens])])[0];
        return b.Gather(c.P(table), flatIds);
    }
}
