using Ferret.Onnx.Graphs;

namespace Ferret.Onnx.Autodiff;

/// <summary>
/// Derives the accumulating form of a training graph: every gradient output <c>&lt;name&gt;_grad</c> gets an
/// input <c>&lt;name&gt;_grad_sum</c> of the same type and becomes <c>gradient + sum</c>. A runtime binds the
/// sum and the output to the same buffer, so micro-batches accumulate in place: the graph's only reader of
/// the sum is the final elementwise Add, which reads each element before it writes it. That keeps the
/// accumulated gradient in one parameter-sized buffer, as PyTorch's <c>.grad</c> does, instead of two.
/// </summary>
public static class GradientAccumulation
{
    public const string SumSuffix = "_grad_sum";

    /// <summary>Every <c>*_grad</c> output accumulates.</summary>
    public static Graph Accumulating(Graph train) => Accumulating(train, _ => true);

    /// <summary>
    /// Only the <c>&lt;name&gt;_grad</c> outputs whose <c>name</c> passes <paramref name="accumulates"/> accumulate
    /// (a block's parameter gradients do; the gradient it hands to the previous block does not).
    /// </summary>
    public static Graph Accumulating(Graph train, Func<string, bool> accumulates)
    {
        ArgumentNullException.ThrowIfNull(train);
        ArgumentNullException.ThrowIfNull(accumulates);
        var g = train.Clone();
        var producers = new Dictionary<string, Node>(StringComparer.Ordinal);
        foreach (var n in g.Nodes)
        {
            foreach (var o in n.Outputs)
                producers[o] = n;
        }
        var outputs = g.Outputs.Where(o => o.Name.EndsWith(ReverseMode.GradientSuffix, StringComparison.Ordinal)
            && accumulates(o.Name[..^ReverseMode.GradientSuffix.Length])).ToList();
        if (outputs.Count == 0)
            throw new ArgumentException($"Graph '{train.Name}' has no '*{ReverseMode.GradientSuffix}' outputs to accumulate.", nameof(train));
        foreach (var output in outputs)
        {
            if (!producers.TryGetValue(output.Name, out var producer) || g.Inputs.Any(i => i.Name == output.Name))
                throw new ArgumentException($"Graph '{train.Name}': gradient output '{output.Name}' is not computed by a node.", nameof(train));
            var local = output.Name + "_local";
            var sum = output.Name[..^ReverseMode.GradientSuffix.Length] + SumSuffix;
            producer.Outputs[producer.Outputs.IndexOf(output.Name)] = local;
            foreach (var reader in g.Nodes)
            {
                for (int i = 0; i < reader.Inputs.Count; i++)
                {
                    if (reader.Inputs[i] == output.Name)
                        reader.Inputs[i] = local;
                }
            }
            g.ValueTypes[local] = output.Type;
            g.Inputs.Add(new ValueInfo(sum, output.Type));
            g.ValueTypes[sum] = output.Type;
            g.Nodes.Add(new Node("Add", "/grad_accumulate" + output.Name, [local, sum], [output.Name]));
        }
        g.Validate();
        return g;
    }
}
