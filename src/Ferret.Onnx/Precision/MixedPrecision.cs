using Ferret.Onnx.Graphs;

namespace Ferret.Onnx.Precision;

/// <summary>How an exported model computes: float32 throughout, or bf16 matrix products with float32 everywhere else.</summary>
public enum ComputePrecision
{
    /// <summary>float32 throughout (the default).</summary>
    Float32,

    /// <summary>
    /// bf16 linear layers on tensor cores (every Gemm reads bf16 copies of its inputs and its result is widened back
    /// to float32), float32 for everything else: norms, attention scores and softmax, residuals, the loss. Parameters
    /// and gradients stay float32 in the flat buffers, so projection and reconstruction are exact in float32.
    /// </summary>
    Bf16Mixed,
}

/// <summary>
/// Rewrites a forward graph for <see cref="ComputePrecision.Bf16Mixed"/> before it is differentiated: each linear
/// layer's (Gemm's) float inputs pass through one shared Cast to bf16 (a weight used twice is cast once), and its output
/// through a Cast back to float32 under the original name, so the rest of the graph and the artifact contract
/// (float32 inputs, outputs and <c>&lt;name&gt;_grad</c>) do not change. The gradient rules then emit the backward
/// products in bf16 too (the Cast rule casts gradients back), as PyTorch's autocast does. Linear layers are where
/// the time goes (24·B·S·H² of a layer's FLOPs against 4·B·S²·H for attention at H ≫ S/6); keeping attention's
/// batched MatMuls in float32 keeps every other operator off bf16 kernels a provider may lack.
/// </summary>
public static class MixedPrecision
{
    public static ComputePrecision Parse(string text) => text?.Trim().ToLowerInvariant() switch
    {
        "fp32" or "float32" => ComputePrecision.Float32,
        "bf16-mixed" => ComputePrecision.Bf16Mixed,
        _ => throw new ArgumentException($"Unknown precision '{text}': expected fp32 or bf16-mixed."),
    };

    public static string Name(ComputePrecision precision) => precision == ComputePrecision.Bf16Mixed ? "bf16-mixed" : "fp32";

    /// <summary>A copy of <paramref name="forward"/> with bf16 matrix products.</summary>
    public static Graph Bf16Products(Graph forward)
    {
        ArgumentNullException.ThrowIfNull(forward);
        var g = forward.Clone();
        var casts = new Dictionary<string, string>(StringComparer.Ordinal);
        var rewritten = new List<Node>(g.Nodes.Count * 2);
        int count = 0;
        foreach (var node in g.Nodes)
        {
            if (node.OpType != "Gemm" || node.Domain.Length != 0 || g.TypeOf(node.Outputs[0])?.ElementType != ElementType.Float)
            {
                rewritten.Add(node);
                continue;
            }
            count++;
            var inputs = new List<string>(node.Inputs.Count);
            foreach (var input in node.Inputs)
            {
                if (input.Length == 0 || g.TypeOf(input) is not { ElementType: ElementType.Float } type)
                {
                    inputs.Add(input);
                    continue;
                }
                if (!casts.TryGetValue(input, out var narrow))
                {
                    narrow = Unique(g, input + "/bf16");
                    g.ValueTypes[narrow] = type with { ElementType = ElementType.BFloat16 };
                    rewritten.Add(new Node("Cast", narrow + "/Cast", [input], [narrow], new Dictionary<string, AttributeValue> { ["to"] = (long)ElementType.BFloat16 }));
                    casts[input] = narrow;
                }
                inputs.Add(narrow);
            }
            var output = node.Outputs[0];
            var outputType = g.TypeOf(output)!;
            var product = Unique(g, output + "/bf16");
            g.ValueTypes[product] = outputType with { ElementType = ElementType.BFloat16 };
            rewritten.Add(new Node(node.OpType, node.Name, inputs, [product], node.Attributes, node.Domain));
            rewritten.Add(new Node("Cast", output + "/Cast", [product], [output], new Dictionary<string, AttributeValue> { ["to"] = (long)ElementType.Float }));
        }
        if (count == 0)
            throw new ArgumentException($"Graph '{forward.Name}' has no float32 linear layer (Gemm) to compute in bf16.", nameof(forward));
        g.Nodes.Clear();
        g.Nodes.AddRange(rewritten);
        g.Validate();
        return g;
    }

    private static string Unique(Graph g, string name)
    {
        var candidate = name;
        for (int i = 1; g.ValueTypes.ContainsKey(candidate); i++)
            candidate = name + "_" + i;
        return candidate;
    }
}
