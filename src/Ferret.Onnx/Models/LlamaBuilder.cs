using System.Globalization;
using Ferret.Onnx.Graphs;

namespace Ferret.Onnx.Models;

/// <summary>
/// LlamaForCausalLM: token embeddings, decoder layers of (RMSNorm, grouped-query self-attention with rotary
/// embeddings, RMSNorm, SwiGLU MLP) with residuals, a final RMSNorm and the LM head (optionally tied).
/// </summary>
public sealed class LlamaBuilder(ModelConfig config) : DecoderBuilder(config)
{
    private static string Layer(int i, string rest) => string.Create(CultureInfo.InvariantCulture, $"model.layers.{i}.{rest}");

    public override IReadOnlyList<(string Name, long[] Shape)> Parameters()
    {
        var c = Config;
        long h = c.HiddenSize, kv = (long)c.KeyValueHeads * c.HeadDim, inter = c.IntermediateSize;
        var list = new List<(string, long[])> { ("model.embed_tokens.weight", [c.VocabSize, h]) };
        for (int i = 0; i < c.Layers; i++)
        {
            list.Add((Layer(i, "self_attn.q_proj.weight"), [h, h]));
            list.Add((Layer(i, "self_attn.k_proj.weight"), [kv, h]));
            list.Add((Layer(i, "self_attn.v_proj.weight"), [kv, h]));
            list.Add((Layer(i, "self_attn.o_proj.weight"), [h, h]));
            list.Add((Layer(i, "mlp.gate_proj.weight"), [inter, h]));
            list.Add((Layer(i, "mlp.up_proj.weight"), [inter, h]));
            list.Add((Layer(i, "mlp.down_proj.weight"), [h, inter]));
            list.Add((Layer(i, "input_layernorm.weight"), [h]));
            list.Add((Layer(i, "post_attention_layernorm.weight"), [h]));
        }
        list.Add(("model.norm.weight", [h]));
        if (!c.TieWordEmbeddings)
            list.Add(("lm_head.weight", [c.VocabSize, h]));
        return list;
    }

    public override string LayerPrefix(int i) => Layer(i, "");

    protected override Value Embed(Context c)
    {
        var b = c.B;
        BuildMasks(c);
        Rotary(c);
        using (b.Scope("model/embed_tokens"))
            return EmbedRows(c, "model.embed_tokens.weight");
    }

    protected override Value Layer(Context c, Value h, int i)
    {
        var b = c.B;
        using var _ = b.Scope(Layer(i, "").TrimEnd('.'));
        Value normed;
        using (b.Scope("input_layernorm"))
            normed = RmsNorm(c, h, Layer(i, "input_layernorm.weight"));
        using (b.Scope("self_attn"))
            h = b.Add(h, SelfAttention(c, normed, i, c.Shared[Context.RotaryCosName], c.Shared[Context.RotarySinName]));
        using (b.Scope("post_attention_layernorm"))
            normed = RmsNorm(c, h, Layer(i, "post_attention_layernorm.weight"));
        using (b.Scope("mlp"))
            return b.Add(h, Mlp(c, normed, i));
    }

    protected override Value Head(Context c, Value h)
    {
        var b = c.B;
        using (b.Scope("model/norm"))
            h = RmsNorm(c, h, "model.norm.weight");
        using (b.Scope("lm_head"))
            return Linear(c, h, Config.TieWordEmbeddings ? "model.embed_tokens.weight" : "lm_head.weight");
    }

    /// <summary>LlamaRMSNorm: <c>weight * (x * rsqrt(mean(x^2) + eps))</c>.</summary>
    private Value RmsNorm(Context c, Value x, string weight)
    {
        var b = c.B;
        var variance = b.ReduceMean(b.Mul(x, x), [-1]);
        var inv = b.Reciprocal(b.Sqrt(b.Add(variance, b.Scalar(Config.NormEpsilon))));
        return b.Mul(c.P(weight), b.Mul(x, inv));
    }

    private Value SelfAttention(Context c, Value x, int layer, Value cos, Value sin)
    {
        int group = Config.Heads / Config.KeyValueHeads;
        var q = SplitHeads(c, Projection(c, x, layer, "self_attn", "q_proj"), Config.KeyValueHeads, group);
        var k = SplitHeads(c, Projection(c, x, layer, "self_attn", "k_proj"), Config.KeyValueHeads, 1);
        var v = SplitHeads(c, Projection(c, x, layer, "self_attn", "v_proj"), Config.KeyValueHeads, 1);
        q = ApplyRotary(c, q, cos, sin);
        k = ApplyRotary(c, k, cos, sin);
        var rows = Attention(c, q, k, v, scaleAfter: true);
        return Projection(c, rows, layer, "self_attn", "o_proj");
    }

    private static Value Mlp(Context c, Value x, int layer)
    {
        var b = c.B;
        var gate = Projection(c, x, layer, "mlp", "gate_proj");
        var up = Projection(c, x, layer, "mlp", "up_proj");
        Value activated;
        using (b.Scope("act_fn"))
            activated = b.Mul(gate, b.Sigmoid(gate));
        return Projection(c, b.Mul(activated, up), layer, "mlp", "down_proj");
    }

    private static Value Projection(Context c, Value rows, int layer, string module, string name)
    {
        using (c.B.Scope(name))
            return Linear(c, rows, Layer(layer, $"{module}.{name}.weight"));
    }

    /// <summary>cos and sin tables [S, head_dim] for positions 0..S-1, gathered from constants computed once (shared by the layers).</summary>
    private void Rotary(Context c)
    {
        var b = c.B;
        int hd = Config.HeadDim, half = hd / 2, maxPos = Config.MaxPositions;
        var invFreq = new float[half];
        for (int j = 0; j < half; j++)
            invFreq[j] = (float)(1.0 / Math.Pow(Config.RopeTheta, 2.0 * j / hd));
        var cos = new float[maxPos * hd];
        var sin = new float[maxPos * hd];
        for (int p = 0; p < maxPos; p++)
        {
            for (int j = 0; j < half; j++)
            {
                // As Hugging Face: the angle is a float32 product; cos/sin of it rounded once.
                float angle = p * invFreq[j];
                cos[(p * hd) + j] = cos[(p * hd) + j + half] = (float)Math.Cos(angle);
                sin[(p * hd) + j] = sin[(p * hd) + j + half] = (float)Math.Sin(angle);
            }
        }
        using (b.Scope("model/rotary_emb"))
        {
            var cosTable = b.Constant(TensorData.FromFloats(cos, maxPos, hd), "cos_cached");
            var sinTable = b.Constant(TensorData.FromFloats(sin, maxPos, hd), "sin_cached");
            c.Shared[Context.RotaryCosName] = b.Gather(cosTable, c.Positions);
            c.Shared[Context.RotarySinName] = b.Gather(sinTable, c.Positions);
        }
    }

    /// <summary><c>x * cos + rotate_half(x) * sin</c>, rotate_half(x) = cat(-x2, x1).</summary>
    private Value ApplyRotary(Context c, Value x, Value cos, Value sin)
    {
        var b = c.B;
        int half = Config.HeadDim / 2;
        var parts = b.Split(x, -1, half, half);
        var rotated = b.Concat(-1, b.Neg(parts[1]), parts[0]);
        return b.Add(b.Mul(x, cos), b.Mul(rotated, sin));
    }
}
