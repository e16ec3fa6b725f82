using Ferret.Onnx.Graphs;

namespace Ferret.Onnx.Autodiff;

/// <summary>
/// Reverse-mode automatic differentiation over ONNX graphs. The pass is generic and small: it finds the
/// nodes on a path from the differentiated inputs to the loss, walks them backwards, asks each operator's
/// <see cref="GradientRules">rule</see> for its input gradients, and sums gradients where a value fans out.
/// The result is the forward graph plus backward nodes in standard operators, with outputs <c>loss</c>
/// (and the original outputs) followed by <c>&lt;name&gt;_grad</c> for each differentiated input.
/// </summary>
public static class ReverseMode
{
    public const string GradientSuffix = "_grad";

    public static Graph AddGradients(Graph forward, string lossName, IReadOnlyList<string> wrt, int opset = 18)
    {
        ArgumentNullException.ThrowIfNull(forward);
        var lossType = forward.TypeOf(lossName) ?? throw new ArgumentException($"Graph '{forward.Name}' has no value '{lossName}' to differentiate.", nameof(lossName));
        if (!lossType.ElementType.IsFloatingPoint())
            throw new ArgumentException($"The loss '{lossName}' is {lossType.ElementType}; it must be floating point.", nameof(lossName));
        if (lossType.Shape is not null && lossType.StaticSize != 1)
            throw new ArgumentException($"The loss '{lossName}' has shape {lossType}; it must be a scalar.", nameof(lossName));
        return Differentiate(forward, [lossName], wrt, opset, (b, _) =>
            b.Scalar(1.0, lossType.ElementType) is var one && lossType.Shape is { Length: > 0 } ? b.Reshape(one, lossType.Shape.Select(d => d.Value ?? 1).ToArray()) : one);
    }

    /// <summary>
    /// The vector-Jacobian product of a graph: for each output <c>o</c> of <paramref name="outputs"/> an input
    /// <c>o_grad</c> (the upstream gradient, of <c>o</c>'s type) is added, and the graph returns only
    /// <c>&lt;name&gt;_grad</c> for each name in <paramref name="wrt"/>: <c>sum over o of &lt;o_grad, d o / d name&gt;</c>.
    /// This is one block's backward pass when a model is differentiated block by block; forward work the
    /// gradients do not need is pruned (the differentiated inputs stay inputs).
    /// </summary>
    public static Graph AddVectorJacobianProduct(Graph forward, IReadOnlyList<string> outputs, IReadOnlyList<string> wrt, int opset = 18)
    {
        ArgumentNullException.ThrowIfNull(forward);
        ArgumentNullException.ThrowIfNull(outputs);
        if (outputs.Count == 0)
            throw new ArgumentException("A vector-Jacobian product needs at least one output to seed.", nameof(outputs));
        foreach (var o in outputs)
        {
            var t = forward.TypeOf(o) ?? throw new ArgumentException($"Graph '{forward.Name}' has no value '{o}' to differentiate.", nameof(outputs));
            if (!t.ElementType.IsFloatingPoint() || t.Shape is null)
                throw new ArgumentException($"Output '{o}' is {t}; it must be floating point, of known rank.", nameof(outputs));
        }
        var g = Differentiate(forward, outputs, wrt, opset, (b, o) => b.Input(o + GradientSuffix, b.TypeOf(o).ElementType, b.TypeOf(o).Shape!), dropForwardOutputs: true);
        // The differentiated inputs stay, even where the gradient does not read the value (a bias's).
        g.PruneDeadCode(wrt);
        return g;
    }

    private static Graph Differentiate(Graph forward, IReadOnlyList<string> seeds, IReadOnlyList<string> wrt, int opset, Func<GraphBuilder, string, Value> seed, bool dropForwardOutputs = false)
    {
        ArgumentNullException.ThrowIfNull(wrt);
        var lossName = seeds[0];
        var inputs = forward.Inputs.ToDictionary(i => i.Name, i => i.Type, StringComparer.Ordinal);
        foreach (var w in wrt)
        {
            if (!inputs.TryGetValue(w, out var t))
                throw new ArgumentException($"'{w}' is not an input of graph '{forward.Name}'; only graph inputs can be differentiated.", nameof(wrt));
            if (!t.ElementType.IsFloatingPoint())
                throw new ArgumentException($"Input '{w}' is {t.ElementType}; only floating-point inputs have gradients.", nameof(wrt));
        }

        // Values that depend on a differentiated input through differentiable operators.
        var requires = new HashSet<string>(wrt, StringComparer.Ordinal);
        foreach (var n in forward.Nodes)
        {
            if (GradientRules.NonDifferentiable.Contains(n.OpType) || !n.Inputs.Any(requires.Contains))
                continue;
            foreach (var o in n.Outputs)
            {
                if (o.Length > 0 && forward.TypeOf(o) is { } ot && ot.ElementType.IsFloatingPoint())
                    requires.Add(o);
            }
        }
        // Values the seeded outputs depend on.
        var relevant = new HashSet<string>(seeds, StringComparer.Ordinal);
        for (int i = forward.Nodes.Count - 1; i >= 0; i--)
        {
            var n = forward.Nodes[i];
            if (n.Outputs.Any(relevant.Contains))
            {
                foreach (var input in n.Inputs)
                {
                    if (input.Length > 0)
                        relevant.Add(input);
                }
            }
        }

        var clone = forward.Clone();
        if (dropForwardOutputs)
            clone.Outputs.Clear();
        var b = new GraphBuilder(clone, opset);
        var contributions = new Dictionary<string, List<Value>>(StringComparer.Ordinal);
        void Contribute(string name, Value grad) =>
            (contributions.TryGetValue(name, out var list) ? list : contributions[name] = []).Add(grad);
        Value? Total(string name)
        {
            if (!contributions.TryGetValue(name, out var list) || list.Count == 0)
                return null;
            if (list.Count > 1)
            {
                using (b.Scope("grad"))
                    list = [b.Op("Sum", list.Select(v => (Value?)v).ToArray())[0]];
                contributions[name] = list;
            }
            return list[0];
        }

        foreach (var s in seeds)
            Contribute(s, seed(b, s));

        bool Needs(string v) => requires.Contains(v) && relevant.Contains(v);
        var active = forward.Nodes.Where(n => n.Outputs.Any(Needs) && n.Inputs.Any(Needs)).ToList();
        for (int i = active.Count - 1; i >= 0; i--)
        {
            var node = active[i];
            var outputGrads = node.Outputs.Select(o => o.Length > 0 ? Total(o) : null).ToList();
            if (outputGrads.All(g => g is null))
                continue;
            if (!GradientRules.TryGet(node.OpType, out var rule))
                throw new NotSupportedException($"No gradient rule for {node.OpType} node '{node.Name}' (on the path from [{string.Join(", ", wrt.Take(3))}{(wrt.Count > 3 ? ", ..." : "")}] to '{lossName}').");
            Value?[] inputGrads;
            try
            {
                using (b.Scope("grad" + (node.Name.StartsWith('/') ? node.Name : "/" + node.Name)))
                    inputGrads = rule(new GradientContext(b, node, outputGrads, Needs));
            }
            catch (Exception e) when (e is InvalidOperationException or ArgumentException or KeyNotFoundException)
            {
                throw new NotSupportedException($"Cannot differentiate {node.OpType} node '{node.Name}': {e.Message}", e);
            }
            for (int k = 0; k < node.Inputs.Count && k < inputGrads.Length; k++)
            {
                if (inputGrads[k] is { } g && Needs(node.Inputs[k]))
                    Contribute(node.Inputs[k], g);
            }
        }

        foreach (var w in wrt)
        {
            var grad = Total(w);
            if (grad is null)
            {
                using (b.Scope("grad"))
                    grad = GradientRules.Zeros(b, b.ValueOf(w));
            }
            var name = w + GradientSuffix;
            // The gradient output carries the parameter's declared shape, not the backward pass's inferred one.
            b.Output(new Value(grad.Value.Name, inputs[w]), name);
        }
        return b.Build();
    }
}
