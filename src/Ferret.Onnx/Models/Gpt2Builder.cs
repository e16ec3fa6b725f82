using System.Globalization;
using Ferret.Onnx.Graphs;

namespace Ferret.Onnx.Models;

/// <summary>
/// GPT2LMHeadModel: token and learned position embeddings, blocks of (LayerNorm, fused-qkv attention,
/// LayerNorm, gelu_new MLP) with Conv1D weights in [in, out] layout, a final LayerNorm and the tied head.
/// </summary>
public sealed class Gpt2Builder(ModelConfig config) : DecoderBuilder(config)
{
    private static string Block(int i, string rest) => string.Create(CultureInfo.InvariantCulture, $"transformer.h.{i}.{rest}");

    public override IReadOnlyList<(string Name, long[] Shape)> Parameters()
    {
        var c = Config;
        long h = c.HiddenSize, inter = c.IntermediateSize;
        var list = new List<(string, long[])> { ("transformer.wte.weight", [c.VocabSize, h]), ("transformer.wpe.weight", [c.MaxPositions, h]) };
        for (int i = 0; i < c.Layers; i++)
        {
            list.Add((Block(i, "ln_1.weight"), [h]));
            list.Add((Block(i, "ln_1.bias"), [h]));
            list.Add((Block(i, "attn.c_attn.weight"), [h, 3 * h]));
            list.Add((Block(i, "attn.c_attn.bias"), [3 * h]));
            list.Add((Block(i, "attn.c_proj.weight"), [h, h]));
            list.Add((Block(i, "attn.c_proj.bias"), [h]));
            list.Add((Block(i, "ln_2.weight"), [h]));
            list.Add((Block(i, "ln_2.bias"), [h]));
            list.Add((Block(i, "mlp.c_fc.weight"), [h, inter]));
            list.Add((Block(i, "mlp.c_fc.bias"), [inter]));
            list.Add((Block(i, "mlp.c_proj.weight"), [inter, h]));
            list.Add((Block(i, "mlp.c_proj.bias"), [h]));
        }
        list.Add(("transformer.ln_f.weight", [h]));
        list.Add(("transformer.ln_f.bias", [h]));
        return list;
    }

    public override string LayerPrefix(int i) => Block(i, "");

    protected override Value Embed(Context c)
    {
        var b = c.B;
        BuildMasks(c);
        int hidden = Config.HiddenSize;
        using (b.Scope("transformer/embeddings"))
        {
            var tokens = EmbedRows(c, "transformer.wte.weight");
            var positions = b.Gather(c.P("transformer.wpe.weight"), c.Positions);
            var shape = b.Concat(0, c.IdsShape, b.Int64s(hidden));
            var grid = b.Op("Reshape", [tokens, shape], 1, null, [new TensorType(ElementType.Float, [Batch, Sequence, hidden])])[0];
            return b.Op("Reshape", [b.Add(grid, positions), b.Int64s(-1, hidden)], 1, null, [new TensorType(ElementType.Float, [Tokens, hidden])])[0];
        }
    }

    protected override Value Layer(Context c, Value h, int i)
    {
        var b = c.B;
        float eps = (float)Config.NormEpsilon;
        using var _ = b.Scope(Block(i, "").TrimEnd('.'));
        Value normed;
        using (b.Scope("ln_1"))
            normed = b.LayerNormalization(h, c.P(Block(i, "ln_1.weight")), c.P(Block(i, "ln_1.bias")), -1, eps);
        using (b.Scope("attn"))
            h = b.Add(h, SelfAttention(c, normed, i));
        using (b.Scope("ln_2"))
            normed = b.LayerNormalization(h, c.P(Block(i, "ln_2.weight")), c.P(Block(i, "ln_2.bias")), -1, eps);
        using (b.Scope("mlp"))
        {
            var up = Conv1D(c, normed, Block(i, "mlp.c_fc.weight"), Block(i, "mlp.c_fc.bias"));
            return b.Add(h, Conv1D(c, GeluNew(b, up), Block(i, "mlp.c_proj.weight"), Block(i, "mlp.c_proj.bias")));
        }
    }

    protected override Value Head(Context c, Value h)
    {
        var b = c.B;
        using (b.Scope("transformer/ln_f"))
            h = b.LayerNormalization(h, c.P("transformer.ln_f.weight"), c.P("transformer.ln_f.bias"), -1, (float)Config.NormEpsilon);
        using (b.Scope("lm_head"))
            return Linear(c, h, "transformer.wte.weight");
    }

    private Value SelfAttention(Context c, Value x, int layer)
    {
        var b = c.B;
        int hidden = Config.HiddenSize;
        var qkv = Conv1D(c, x, Block(layer, "attn.c_attn.weight"), Block(layer, "attn.c_attn.bias"));
        var parts = b.Split(qkv, 1, hidden, hidden, hidden);
        var q = SplitHeads(c, parts[0], Config.Heads, 1);
        var k = SplitHeads(c, parts[1], Config.Heads, 1);
        var v = SplitHeads(c, parts[2], Config.Heads, 1);
        var rows = Attention(c, q, k, v, scaleAfter: false);
        return Conv1D(c, rows, Block(layer, "attn.c_proj.weight"), Block(layer, "attn.c_proj.bias"));
    }

    /// <summary>gelu_new: <c>0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))</c>.</summary>
    private static Value GeluNew(GraphBuilder b, Value x)
    {
        var cube = b.Mul(b.Mul(x, x), x);
        var inner = b.Mul(b.Scalar(Math.Sqrt(2.0 / Math.PI)), b.Add(x, b.Mul(b.Scalar(0.044715), cube)));
        return b.Mul(b.Mul(b.Scalar(0.5), x), b.Add(b.Scalar(1.0), b.Tanh(inner)));
    }
}
