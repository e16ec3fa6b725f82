using Ferret.Onnx.Graphs;

namespace Ferret.Onnx.Autodiff;

/// <summary>A gradient rule: from the forward node and its output gradients, the gradients of its inputs (null where none).</summary>
public delegate Value?[] GradientRule(GradientContext c);

/// <summary>
/// One reverse-mode rule per ONNX operator, keyed by op type (the shape of ONNX Runtime training's gradient
/// registry). Every rule emits standard <c>ai.onnx</c> operators only.
/// </summary>
public static class GradientRules
{
    /// <summary>Operators whose outputs never carry a gradient (shapes, comparisons, integer logic).</summary>
    public static IReadOnlySet<string> NonDifferentiable { get; } = new HashSet<string>(StringComparer.Ordinal)
    {
        "Shape", "Size", "Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual", "Not", "And", "Or", "Xor", "NonZero",
        "Range", "ConstantOfShape", "Constant", "OneHot", "ArgMax", "ArgMin", "Floor", "Ceil", "Round", "Sign", "IsNaN", "IsInf",
    };

    private static readonly Dictionary<string, GradientRule> Rules = new(StringComparer.Ordinal)
    {
        ["Identity"] = c => [c.DY()],
        ["Add"] = c => [Ub(c, c.DY()!.Value, 0), Ub(c, c.DY()!.Value, 1)],
        ["Sub"] = c => [Ub(c, c.DY()!.Value, 0), c.Needs(1) ? c.Unbroadcast(c.B.Neg(c.DY()!.Value), c.X(1)) : null],
        ["Mul"] = c => [
            c.Needs(0) ? c.Unbroadcast(c.B.Mul(c.DY()!.Value, c.X(1)), c.X(0)) : null,
            c.Needs(1) ? c.Unbroadcast(c.B.Mul(c.DY()!.Value, c.X(0)), c.X(1)) : null],
        ["Div"] = c => [
            c.Needs(0) ? c.Unbroadcast(c.B.Div(c.DY()!.Value, c.X(1)), c.X(0)) : null,
            c.Needs(1) ? c.Unbroadcast(c.B.Neg(c.B.Div(c.B.Mul(c.DY()!.Value, c.Y()), c.X(1))), c.X(1)) : null],
        ["Neg"] = c => [c.B.Neg(c.DY()!.Value)],
        ["Pow"] = Pow,
        ["Sqrt"] = c => [c.B.Div(c.B.Mul(c.DY()!.Value, c.Scalar(0.5)), c.Y())],
        ["Reciprocal"] = c => [c.B.Neg(c.B.Mul(c.DY()!.Value, c.B.Mul(c.Y(), c.Y())))],
        ["Exp"] = c => [c.B.Mul(c.DY()!.Value, c.Y())],
        ["Log"] = c => [c.B.Div(c.DY()!.Value, c.X(0))],
        ["Tanh"] = c => [c.B.Mul(c.DY()!.Value, c.B.Sub(c.Scalar(1), c.B.Mul(c.Y(), c.Y())))],
        ["Sigmoid"] = c => [c.B.Mul(c.DY()!.Value, c.B.Mul(c.Y(), c.B.Sub(c.Scalar(1), c.Y())))],
        ["Erf"] = c => [c.B.Mul(c.DY()!.Value, c.B.Mul(c.Scalar(2 / Math.Sqrt(Math.PI)), c.B.Exp(c.B.Neg(c.B.Mul(c.X(0), c.X(0))))))],
        ["Relu"] = c => [c.B.Where(c.B.Greater(c.X(0), c.Scalar(0)), c.DY()!.Value, c.Scalar(0))],
        ["Abs"] = c => [c.B.Where(c.B.Less(c.X(0), c.Scalar(0)), c.B.Neg(c.DY()!.Value), c.DY()!.Value)],
        ["Max"] = c => MaxMin(c, isMax: true),
        ["Min"] = c => MaxMin(c, isMax: false),
        ["Clip"] = Clip,
        ["Sum"] = c => Enumerable.Range(0, c.InputCount).Select(i => Ub(c, c.DY()!.Value, i)).ToArray(),
        ["Softmax"] = c =>
        {
            long axis = c.Node.GetInt("axis", -1);
            var gy = c.B.Mul(c.DY()!.Value, c.Y());
            return [c.B.Sub(gy, c.B.Mul(c.Y(), c.B.ReduceSum(gy, [axis], keepDims: true)))];
        },
        ["LogSoftmax"] = c =>
        {
            long axis = c.Node.GetInt("axis", -1);
            var sum = c.B.ReduceSum(c.DY()!.Value, [axis], keepDims: true);
            return [c.B.Sub(c.DY()!.Value, c.B.Mul(c.B.Exp(c.Y()), sum))];
        },
        ["ReduceSum"] = c => [Reduce(c, mean: false)],
        ["ReduceMean"] = c => [Reduce(c, mean: true)],
        ["MatMul"] = MatMul,
        ["Gemm"] = Gemm,
        ["LayerNormalization"] = LayerNormalization,
        ["Gather"] = Gather,
        ["Reshape"] = c => [ReshapeLike(c, c.DY()!.Value, c.X(0))],
        ["Flatten"] = c => [ReshapeLike(c, c.DY()!.Value, c.X(0))],
        ["Squeeze"] = c => [ReshapeLike(c, c.DY()!.Value, c.X(0))],
        ["Unsqueeze"] = c => [ReshapeLike(c, c.DY()!.Value, c.X(0))],
        ["Transpose"] = c =>
        {
            var perm = c.Node.GetInts("perm") ?? Enumerable.Range(0, c.X(0).Rank).Reverse().Select(i => (long)i).ToArray();
            var inverse = new long[perm.Length];
            for (int i = 0; i < perm.Length; i++)
                inverse[perm[i]] = i;
            return [c.B.Transpose(c.DY()!.Value, inverse)];
        },
        ["Slice"] = Slice,
        ["Concat"] = Concat,
        ["Split"] = Split,
        ["Expand"] = c => [c.Unbroadcast(c.DY()!.Value, c.X(0))],
        ["Where"] = c =>
        {
            var zero = c.Scalar(0);
            return [
                null,
                c.Needs(1) ? c.Unbroadcast(c.B.Where(c.X(0), c.DY()!.Value, zero), c.X(1)) : null,
                c.Needs(2) ? c.Unbroadcast(c.B.Where(c.X(0), zero, c.DY()!.Value), c.X(2)) : null];
        },
        ["Cast"] = c => c.X(0).ElementType.IsFloatingPoint() && c.Type.IsFloatingPoint() ? [c.B.Cast(c.DY()!.Value, c.X(0).ElementType)] : [null],
        ["Trilu"] = c => [c.B.Trilu(c.DY()!.Value, c.Node.GetInt("upper", 1) != 0, c.HasInput(1) ? c.X(1) : null)],
        ["SoftmaxCrossEntropyLoss"] = SoftmaxCrossEntropyLoss,
    };

    /// <summary>Operator types with a gradient rule.</summary>
    public static IReadOnlyCollection<string> SupportedOps => Rules.Keys;

    public static bool TryGet(string opType, out GradientRule rule) => Rules.TryGetValue(opType, out rule!);

    /// <summary>Adds or replaces a rule (for custom operators).</summary>
    public static void Register(string opType, GradientRule rule) => Rules[opType] = rule;

    private static Value? Ub(GradientContext c, Value grad, int input) => c.Needs(input) ? c.Unbroadcast(grad, c.X(input)) : null;

    private static Value ReshapeLike(GradientContext c, Value grad, Value like) =>
        like.Shape is { } s && s.All(d => d.IsStatic)
            ? c.B.Reshape(grad, s.Select(d => d.Value!.Value).ToArray())
            : c.B.Op("Reshape", [grad, c.B.Shape(like)], 1, null, [like.Type with { ElementType = grad.ElementType }])[0];

    private static Value?[] Pow(GradientContext c)
    {
        var gy = c.DY()!.Value;
        var a = c.X(0);
        Value? ga = null;
        if (c.Needs(0))
        {
            var e = c.Constant(1);
            if (e is { Count: 1 })
            {
                double p = e.ScalarValue();
                var local = p switch
                {
                    1 => gy,
                    2 => c.B.Mul(gy, c.B.Mul(a, c.Scalar(2))),
                    _ => c.B.Mul(gy, c.B.Mul(c.Scalar(p), c.B.Pow(a, c.Scalar(p - 1)))),
                };
                ga = c.Unbroadcast(local, a);
            }
            else
            {
                var b = c.X(1);
                var bt = b.ElementType == a.ElementType ? b : c.B.Cast(b, a.ElementType);
                ga = c.Unbroadcast(c.B.Mul(gy, c.B.Mul(bt, c.B.Pow(a, c.B.Sub(bt, c.Scalar(1))))), a);
            }
        }
        Value? gb = c.Needs(1) ? c.Unbroadcast(c.B.Mul(gy, c.B.Mul(c.Y(), c.B.Log(a))), c.X(1)) : null;
        return [ga, gb];
    }

    private static Value?[] MaxMin(GradientContext c, bool isMax)
    {
        if (c.InputCount != 2)
            throw c.Unsupported("only two-input Max/Min is differentiable here");
        var gy = c.DY()!.Value;
        var zero = c.Scalar(0);
        var first = isMax ? c.B.Not(c.B.Less(c.X(0), c.X(1))) : c.B.Not(c.B.Greater(c.X(0), c.X(1)));
        return [
            c.Needs(0) ? c.Unbroadcast(c.B.Where(first, gy, zero), c.X(0)) : null,
            c.Needs(1) ? c.Unbroadcast(c.B.Where(first, zero, gy), c.X(1)) : null];
    }

    private static Value?[] Clip(GradientContext c)
    {
        var gy = c.DY()!.Value;
        var x = c.X(0);
        var pass = gy;
        var zero = c.Scalar(0);
        if (c.HasInput(1))
            pass = c.B.Where(c.B.Less(x, c.X(1)), zero, pass);
        if (c.HasInput(2))
            pass = c.B.Where(c.B.Greater(x, c.X(2)), zero, pass);
        return [pass, null, null];
    }

    private static Value Reduce(GradientContext c, bool mean)
    {
        var x = c.X(0);
        var gy = c.DY()!.Value;
        long[]? axes = c.HasInput(1) ? c.Constant(1)?.ToInt64s() ?? throw c.Unsupported("reduction axes must be constant") : c.Node.GetInts("axes");
        bool keep = c.Node.GetInt("keepdims", 1) != 0;
        if (axes is null || axes.Length == 0)
        {
            if (c.Node.GetInt("noop_with_empty_axes", 0) != 0)
                return gy;
            axes = Enumerable.Range(0, x.Rank).Select(i => (long)i).ToArray();
        }
        var g = keep ? gy : c.B.Unsqueeze(gy, axes.Select(a => (long)ShapeInferenceAxis(a, x.Rank)).Order().ToArray());
        var expanded = c.B.Op("Expand", [g, c.B.Shape(x)], 1, null, [x.Type with { ElementType = gy.ElementType }])[0];
        if (!mean)
            return expanded;
        var count = axes.Select(a => x.Shape![ShapeInferenceAxis(a, x.Rank)]).ToArray();
        Value n = count.All(d => d.IsStatic)
            ? c.Scalar(count.Aggregate(1L, (p, d) => p * d.Value!.Value))
            : c.B.Cast(c.B.Div(c.B.Op("Size", [x])[0], c.B.Op("Size", [c.Y()])[0]), c.Type);
        return c.B.Div(expanded, n);
    }

    private static int ShapeInferenceAxis(long axis, int rank) => (int)(axis < 0 ? axis + rank : axis);

    private static Value?[] MatMul(GradientContext c)
    {
        var a = c.X(0);
        var b = c.X(1);
        var gy = c.DY()!.Value;
        var B = c.B;
        if (a.Rank >= 2 && b.Rank == 2)
        {
            // Rows of a (all leading dims flattened) times a weight matrix: the common projection.
            var k = b.Shape![0];
            var n = b.Shape![1];
            if (!k.IsStatic || !n.IsStatic)
                throw c.Unsupported("the weight of a projection needs static dimensions");
            Value? ga = null, gb = null;
            if (c.Needs(0))
            {
                var rows = a.Rank == 2 ? gy : B.Reshape(gy, -1, n.Value!.Value);
                var g2 = B.Gemm(rows, b, transB: true);
                ga = a.Rank == 2 ? g2 : ReshapeLike(c, g2, a);
            }
            if (c.Needs(1))
            {
                var a2 = a.Rank == 2 ? a : B.Reshape(a, -1, k.Value!.Value);
                var g2 = a.Rank == 2 ? gy : B.Reshape(gy, -1, n.Value!.Value);
                gb = B.Gemm(a2, g2, transA: true);
            }
            return [ga, gb];
        }
        if (a.Rank < 2 || b.Rank < 2)
            return MatMulVector(c);
        var aT = B.Transpose(a, SwapLast(a.Rank));
        var bT = B.Transpose(b, SwapLast(b.Rank));
        return [
            c.Needs(0) ? c.Unbroadcast(B.MatMul(gy, bT), a) : null,
            c.Needs(1) ? c.Unbroadcast(B.MatMul(aT, gy), b) : null];
    }

    /// <summary>MatMul with a 1-D operand: treat it as a matrix with a unit dimension, then drop it again.</summary>
    private static Value?[] MatMulVector(GradientContext c)
    {
        var a = c.X(0);
        var b = c.X(1);
        var gy = c.DY()!.Value;
        var B = c.B;
        var a2 = a.Rank == 1 ? B.Unsqueeze(a, 0) : a;
        var b2 = b.Rank == 1 ? B.Unsqueeze(b, 1) : b;
        var g2 = gy;
        if (a.Rank == 1)
            g2 = B.Unsqueeze(g2, g2.Rank - (b.Rank == 1 ? 0 : 1));
        if (b.Rank == 1)
            g2 = B.Unsqueeze(g2, g2.Rank);
        Value? ga = null, gb = null;
        if (c.Needs(0))
        {
            var g = B.MatMul(g2, B.Transpose(b2, SwapLast(b2.Rank)));
            ga = a.Rank == 1 ? B.Reshape(c.Unbroadcast(g, a2), a.Shape![0].Value ?? -1) : c.Unbroadcast(g, a);
        }
        if (c.Needs(1))
        {
            var g = B.MatMul(B.Transpose(a2, SwapLast(a2.Rank)), g2);
            gb = b.Rank == 1 ? B.Reshape(c.Unbroadcast(g, b2), b.Shape![0].Value ?? -1) : c.Unbroadcast(g, b);
        }
        return [ga, gb];
    }

    private static long[] SwapLast(int rank)
    {
        var perm = Enumerable.Range(0, rank).Select(i => (long)i).ToArray();
        (perm[rank - 1], perm[rank - 2]) = (perm[rank - 2], perm[rank - 1]);
        return perm;
    }

    private static Value?[] Gemm(GradientContext c)
    {
        var a = c.X(0);
        var b = c.X(1);
        var gy = c.DY()!.Value;
        bool ta = c.Node.GetInt("transA", 0) != 0;
        bool tb = c.Node.GetInt("transB", 0) != 0;
        float alpha = c.Node.GetFloat("alpha", 1f);
        float beta = c.Node.GetFloat("beta", 1f);
        Value? ga = null, gb = null, gc = null;
        if (c.Needs(0))
            ga = ta ? c.B.Gemm(b, gy, transA: tb, transB: true, alpha: alpha) : c.B.Gemm(gy, b, transB: !tb, alpha: alpha);
        if (c.Needs(1))
            gb = tb ? c.B.Gemm(gy, a, transA: true, transB: ta, alpha: alpha) : c.B.Gemm(a, gy, transA: !ta, alpha: alpha);
        if (c.HasInput(2) && c.Needs(2))
            gc = c.Unbroadcast(beta == 1f ? gy : c.B.Mul(gy, c.Scalar(beta)), c.X(2));
        return [ga, gb, gc];
    }

    private static Value?[] LayerNormalization(GradientContext c)
    {
        var x = c.X(0);
        var scale = c.X(1);
        var gy = c.DY()!.Value;
        var B = c.B;
        int rank = x.Rank;
        int axis = ShapeInferenceAxis(c.Node.GetInt("axis", -1), rank);
        float eps = c.Node.GetFloat("epsilon", 1e-5f);
        var axes = Enumerable.Range(axis, rank - axis).Select(i => (long)i).ToArray();
        // Recompute the statistics from primitives: mean, centred input, inverse standard deviation.
        var mean = B.ReduceMean(x, axes);
        var xc = B.Sub(x, mean);
        var variance = B.ReduceMean(B.Mul(xc, xc), axes);
        var inv = B.Reciprocal(B.Sqrt(B.Add(variance, c.Scalar(eps))));
        var xhat = B.Mul(xc, inv);
        Value? gx = null;
        if (c.Needs(0))
        {
            var gxhat = B.Mul(gy, scale);
            var m1 = B.ReduceMean(gxhat, axes);
            var m2 = B.ReduceMean(B.Mul(gxhat, xhat), axes);
            gx = B.Mul(inv, B.Sub(B.Sub(gxhat, m1), B.Mul(xhat, m2)));
        }
        Value? gscale = c.Needs(1) ? c.Unbroadcast(B.Mul(gy, xhat), scale) : null;
        Value? gbias = c.HasInput(2) && c.Needs(2) ? c.Unbroadcast(gy, c.X(2)) : null;
        return [gx, gscale, gbias];
    }

    private static Value?[] Gather(GradientContext c)
    {
        if (!c.Needs(0))
            return [null, null];
        var data = c.X(0);
        var indices = c.X(1);
        long axis = c.Node.GetInt("axis", 0);
        if (ShapeInferenceAxis(axis, data.Rank) != 0)
            throw c.Unsupported("only Gather along axis 0 (embedding lookups) is differentiable here");
        // Scatter-add the rows of the gradient back to the rows they were read from; repeated ids accumulate.
        var zeros = Zeros(c.B, data);
        var idx = c.B.Unsqueeze(indices.ElementType == ElementType.Int64 ? indices : c.B.Cast(indices, ElementType.Int64), indices.Rank);
        var grad = c.B.Op("ScatterND", [zeros, idx, c.DY()!.Value], 1, new Dictionary<string, AttributeValue> { ["reduction"] = "add" }, [data.Type])[0];
        return [grad, null];
    }

    /// <summary>Zeros of a value's shape and type.</summary>
    internal static Value Zeros(GraphBuilder b, Value like) => b.Op("ConstantOfShape", [b.Shape(like)], 1,
        new Dictionary<string, AttributeValue> { ["value"] = new AttributeValue.Tensor(new TensorData(like.ElementType, [1], TensorData.Scalar(0, like.ElementType).Raw)) },
        [like.Type])[0];

    private static Value?[] Slice(GradientContext c)
    {
        var x = c.X(0);
        var gy = c.DY()!.Value;
        var starts = c.Constant(1)?.ToInt64s() ?? throw c.Unsupported("slice starts must be constant");
        var ends = c.Constant(2)?.ToInt64s() ?? throw c.Unsupported("slice ends must be constant");
        var axes = c.HasInput(3) ? c.Constant(3)?.ToInt64s() ?? throw c.Unsupported("slice axes must be constant") : Enumerable.Range(0, starts.Length).Select(i => (long)i).ToArray();
        var steps = c.HasInput(4) ? c.Constant(4)?.ToInt64s() ?? throw c.Unsupported("slice steps must be constant") : null;
        if (steps is not null && steps.Any(s => s != 1))
            throw c.Unsupported("only unit-step slices are differentiable here");
        int rank = x.Rank;
        var begin = new long[rank];
        var end = new long[rank];
        for (int i = 0; i < axes.Length; i++)
        {
            int a = ShapeInferenceAxis(axes[i], rank);
            var dim = x.Shape![a];
            long s = starts[i], e = ends[i];
            if (dim.Value is long n)
            {
                s = s < 0 ? Math.Max(0, s + n) : Math.Min(s, n);
                e = e < 0 ? Math.Max(0, e + n) : Math.Min(e, n);
                begin[a] = s;
                end[a] = n - Math.Max(s, e);
            }
            else if (s >= 0 && (e < 0 || e >= int.MaxValue))
            {
                // Symbolic size: a non-negative start and an end counted from the back pad statically.
                begin[a] = s;
                end[a] = e < 0 ? -e : 0;
            }
            else
            {
                throw c.Unsupported($"slice [{s}, {e}) of symbolic dimension {dim} needs its size");
            }
        }
        var pads = c.B.Int64s([.. begin, .. end]);
        return [c.B.Op("Pad", [gy, pads], 1, null, [x.Type])[0], null, null, null, null];
    }

    private static Value?[] Concat(GradientContext c)
    {
        var gy = c.DY()!.Value;
        long axis = c.Node.GetInt("axis", 0);
        int a = ShapeInferenceAxis(axis, gy.Rank);
        var sizes = Enumerable.Range(0, c.InputCount).Select(i => c.X(i).Shape![a]).ToArray();
        if (sizes.All(d => d.IsStatic))
        {
            var parts = c.B.Split(gy, axis, sizes.Select(d => d.Value!.Value).ToArray());
            return parts.Select((p, i) => c.Needs(i) ? (Value?)p : null).ToArray();
        }
        // Sizes known only at run time: slice each part out between running offsets.
        var result = new Value?[c.InputCount];
        Value offset = c.B.Int64s(0);
        for (int i = 0; i < c.InputCount; i++)
        {
            var size = c.B.Slice(c.B.Shape(c.X(i)), [a], [a + 1], [0]);
            var next = c.B.Add(offset, size);
            if (c.Needs(i))
                result[i] = c.B.Op("Slice", [gy, offset, next, c.B.Int64s(a)], 1, null, [c.X(i).Type])[0];
            offset = next;
        }
        return result;
    }

    private static Value?[] Split(GradientContext c)
    {
        long axis = c.Node.GetInt("axis", 0);
        var parts = new Value[c.Node.Outputs.Count];
        for (int i = 0; i < parts.Length; i++)
        {
            parts[i] = c.DY(i) ?? Zeros(c.B, c.Y(i));
        }
        return [c.B.Concat(axis, parts), null];
    }

    private static Value?[] SoftmaxCrossEntropyLoss(GradientContext c)
    {
        var scores = c.X(0);
        var labels = c.X(1);
        if (c.HasInput(2))
            throw c.Unsupported("class weights are not differentiable here");
        if (scores.Rank != 2)
            throw c.Unsupported("scores must be [N, C]; flatten sequence dimensions first");
        var B = c.B;
        var gy = c.DY()!.Value;
        string reduction = c.Node.GetString("reduction") ?? "mean";
        var type = scores.ElementType;
        var zeroLabel = B.Int64Scalar(0);
        Value mask;
        Value safeLabels = labels;
        if (c.Node.Attributes.ContainsKey("ignore_index"))
        {
            var ignore = B.Int64Scalar(c.Node.GetInt("ignore_index", -100));
            var keep = B.Not(B.Equal(labels, ignore));
            safeLabels = B.Where(keep, labels, zeroLabel);
            mask = B.Cast(keep, type);
        }
        else
        {
            mask = B.Cast(B.Equal(labels, labels), type);
        }
        Value rowScale = reduction switch
        {
            "none" => B.Mul(gy, mask),
            "sum" => B.Mul(mask, gy),
            "mean" => B.Mul(mask, B.Div(gy, B.ReduceSum(mask, [0], keepDims: false))),
            _ => throw c.Unsupported($"reduction '{reduction}'"),
        };
        // d loss / d scores = s * (softmax(scores) - onehot(label)), built without a one-hot [N, C] tensor: scale the
        // probabilities, then overwrite each row's label entry with (scaled p - s). Two [N, C] buffers at the peak
        // (the probabilities, scaled in place, and the scatter's output) instead of five.
        var scale = B.Unsqueeze(rowScale, 1);
        var scaled = B.Mul(B.Softmax(scores, 1), scale);
        var column = B.Unsqueeze(safeLabels, 1);
        var atLabel = B.Op("GatherElements", [scaled, column], 1, new Dictionary<string, AttributeValue> { ["axis"] = 1L })[0];
        var corrected = B.Sub(atLabel, scale);
        return [B.Op("ScatterElements", [scaled, column, corrected], 1, new Dictionary<string, AttributeValue> { ["axis"] = 1L }, [scaled.Type])[0], null];
    }
}
