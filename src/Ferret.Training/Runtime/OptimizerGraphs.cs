using Ferret.Core.Parameters;
using Ferret.Onnx.Graphs;

namespace Ferret.Training.Runtime;

/// <summary>
/// The buffer kernels of <see cref="ResidentTraining"/> as small ONNX graphs over every parameter tensor, so they
/// run on the session's own execution provider. Per tensor <c>i</c> the inputs are <c>w{i}</c>, <c>g{i}</c>,
/// <c>m{i}</c>, <c>v{i}</c> (as the optimizer needs) and the outputs <c>w_out{i}</c>, <c>m_out{i}</c>,
/// <c>v_out{i}</c>; the runtime binds each output to the buffer of its input, so updates happen in place
/// (every input is read only by the elementwise node that consumes it before its output is written).
/// Hyper-parameters are float scalar inputs, set per step.
/// </summary>
internal static class OptimizerGraphs
{
    /// <summary>
    /// PyTorch's SGD: <c>d = scale * g + wd * w</c>; with momentum <c>m = mu * m + d</c> and the step <c>m</c>
    /// (Nesterov: <c>d + mu * m</c>); <c>w -= lr * step</c>. Scalars: <c>lr</c>, <c>scale</c>, <c>mu</c>, <c>wd</c>.
    /// </summary>
    public static byte[] Sgd(ParameterLayout layout, bool momentum, bool nesterov, bool weightDecay) =>
        Build(layout, "sgd", SgdScalars(momentum, weightDecay), (b, i, shape) =>
        {
            var w = b.Input($"w{i}", ElementType.Float, shape);
            var g = b.Input($"g{i}", ElementType.Float, shape);
            var d = b.Mul(g, b.ValueOf("scale"));
            if (weightDecay)
                d = b.Add(d, b.Mul(w, b.ValueOf("wd")));
            var step = d;
            if (momentum)
            {
                var m = b.Input($"m{i}", ElementType.Float, shape);
                var mu = b.ValueOf("mu");
                var mNew = b.Add(b.Mul(m, mu), d);
                b.Output(mNew, $"m_out{i}");
                step = nesterov ? b.Add(d, b.Mul(mNew, mu)) : mNew;
            }
            b.Output(b.Sub(w, b.Mul(step, b.ValueOf("lr"))), $"w_out{i}");
        });

    /// <summary>
    /// PyTorch's AdamW on <c>scale * g</c>: <c>m = b1 m + (1 - b1) g</c>, <c>v = b2 v + (1 - b2) g^2</c>,
    /// <c>w = w * decay - step_size * m / (sqrt(v) * inv_sqrt_c2 + eps)</c>, with the bias corrections folded into
    /// the scalars <c>decay</c>, <c>step_size</c> and <c>inv_sqrt_c2</c> that the host computes per step.
    /// </summary>
    public static byte[] AdamW(ParameterLayout layout) =>
        Build(layout, "adamw", ["scale", "b1", "one_minus_b1", "b2", "one_minus_b2", "decay", "step_size", "inv_sqrt_c2", "eps"], (b, i, shape) =>
        {
            var w = b.Input($"w{i}", ElementType.Float, shape);
            var g = b.Mul(b.Input($"g{i}", ElementType.Float, shape), b.ValueOf("scale"));
            var m = b.Input($"m{i}", ElementType.Float, shape);
            var v = b.Input($"v{i}", ElementType.Float, shape);
            var mNew = b.Add(b.Mul(m, b.ValueOf("b1")), b.Mul(g, b.ValueOf("one_minus_b1")));
            var vNew = b.Add(b.Mul(v, b.ValueOf("b2")), b.Mul(b.Mul(g, g), b.ValueOf("one_minus_b2")));
            b.Output(mNew, $"m_out{i}");
            b.Output(vNew, $"v_out{i}");
            var denominator = b.Add(b.Mul(b.Sqrt(vNew), b.ValueOf("inv_sqrt_c2")), b.ValueOf("eps"));
            b.Output(b.Sub(b.Mul(w, b.ValueOf("decay")), b.Div(b.Mul(mNew, b.ValueOf("step_size")), denominator)), $"w_out{i}");
        });

    /// <summary>The squared L2 norm of all tensors together, output <c>sum_of_squares</c> (a float scalar).</summary>
    public static byte[] SumOfSquares(ParameterLayout layout)
    {
        var b = new GraphBuilder("sum_of_squares");
        var parts = new List<Value?>();
        for (int i = 0; i < layout.Tensors.Count; i++)
        {
            var g = b.Input($"g{i}", ElementType.Float, Shape(layout, i));
            parts.Add(b.Op("ReduceSumSquare", [g], 1, new Dictionary<string, AttributeValue> { ["keepdims"] = 0L }, [new TensorType(ElementType.Float, [])])[0]);
        }
        var total = parts.Count == 1 ? parts[0]!.Value : b.Op("Sum", parts, 1, null, [new TensorType(ElementType.Float, [])])[0];
        b.Output(total, "sum_of_squares");
        return new OnnxModel(b.Build(), b.Opset).ToBytes();
    }

    /// <summary>Zeros for every tensor: outputs <c>y{i}</c>.</summary>
    public static byte[] Zeros(ParameterLayout layout)
    {
        var b = new GraphBuilder("zeros");
        var zero = new Dictionary<string, AttributeValue> { ["value"] = TensorData.FromFloats([0f], 1) };
        for (int i = 0; i < layout.Tensors.Count; i++)
        {
            var t = layout.Tensors[i];
            b.Output(b.Op("ConstantOfShape", [b.Int64s([.. t.Shape])], 1, zero, [new TensorType(ElementType.Float, Shape(layout, i))])[0], $"y{i}");
        }
        return new OnnxModel(b.Build(), b.Opset).ToBytes();
    }

    /// <summary><c>y = x</c> over a float tensor of any shape: copies between host and device memory.</summary>
    public static byte[] Copy()
    {
        var any = new TensorType(ElementType.Float, null);
        var g = new Graph { Name = "copy" };
        g.Inputs.Add(new ValueInfo("x", any));
        g.ValueTypes["x"] = any;
        g.Nodes.Add(new Node("Identity", "copy", ["x"], ["y"]));
        g.ValueTypes["y"] = any;
        g.Outputs.Add(new ValueInfo("y", any));
        return new OnnxModel(g).ToBytes();
    }

    private static List<string> SgdScalars(bool momentum, bool weightDecay)
    {
        var names = new List<string> { "lr", "scale" };
        if (momentum)
            names.Add("mu");
        if (weightDecay)
            names.Add("wd");
        return names;
    }

    private static Dim[] Shape(ParameterLayout layout, int i) => layout.Tensors[i].Shape.Select(d => (Dim)d).ToArray();

    private static byte[] Build(ParameterLayout layout, string name, IReadOnlyList<string> scalars, Action<GraphBuilder, int, Dim[]> tensor)
    {
        var b = new GraphBuilder(name);
        foreach (var s in scalars)
            b.Input(s, ElementType.Float);
        for (int i = 0; i < layout.Tensors.Count; i++)
            tensor(b, i, Shape(layout, i));
        return new OnnxModel(b.Build(), b.Opset).ToBytes();
    }
}
