using Ferret.Onnx.Graphs;

namespace Ferret.Onnx.Models;

/// <summary>
/// The forward graphs of a model cut at its decoder-layer boundaries, for activation recompute: the prologue
/// (masks, position tables, embedding lookup), one decoder layer whose weights are inputs with generic names
/// (every layer runs it with its own tensors bound), and the head (final norm, LM head, loss).
/// </summary>
/// <param name="Prologue">Inputs <c>input_ids</c>, <c>attention_mask</c> and the embedding tables; outputs <c>hidden</c> and the shared per-batch tensors.</param>
/// <param name="Layer">Inputs <c>hidden</c>, the shared tensors and the layer's weights; output <c>hidden_out</c>.</param>
/// <param name="Head">Inputs <c>hidden</c>, <c>labels</c> and the head's weights; output <c>loss</c>.</param>
/// <param name="LayerParameters">The layer graph's weight inputs, in order (names relative to the layer).</param>
/// <param name="LayerTensors">For each layer, the model parameter bound to each of <paramref name="LayerParameters"/>.</param>
public sealed record DecoderBlockGraphs(Graph Prologue, Graph Layer, Graph Head, IReadOnlyList<string> LayerParameters, IReadOnlyList<IReadOnlyList<string>> LayerTensors)
{
    /// <summary>Inputs of the layer graph that every layer shares (the prologue's outputs other than <c>hidden</c>).</summary>
    public IReadOnlyList<string> SharedInputs => Prologue.Outputs.Select(o => o.Name).Where(n => n != DecoderBuilder.Hidden).ToList();
}

public abstract partial class DecoderBuilder
{
    /// <summary>Hidden rows [B*S, H] at a layer boundary.</summary>
    public const string Hidden = "hidden";

    /// <summary>A layer's output hidden rows.</summary>
    public const string HiddenOut = "hidden_out";

    /// <summary>Builds the block graphs; every parameter is read by the prologue, the head or the layers (tied tables by two of them).</summary>
    public DecoderBlockGraphs BuildBlocks()
    {
        var shapes = Parameters().ToDictionary(p => p.Name, p => p.Shape, StringComparer.Ordinal);
        var hiddenType = new TensorType(ElementType.Float, [Tokens, new Dim(Config.HiddenSize)]);

        var pb = new GraphBuilder("prologue");
        var ids = pb.Input(InputIds, ElementType.Int64, Batch, Sequence);
        var mask = pb.Input(AttentionMask, ElementType.Int64, Batch, Sequence);
        var prologueContext = new Context(pb, OnFirstUse(pb, shapes, name => name), ids, mask, pb.Shape(ids));
        pb.Output(Embed(prologueContext), Hidden);
        foreach (var (name, value) in prologueContext.Shared)
            pb.Output(value, name);
        var prologue = pb.Build();

        var lb = new GraphBuilder("layer");
        var hidden = lb.Input(Hidden, ElementType.Float, hiddenType.Shape!);
        var shared = prologueContext.Shared.ToDictionary(kv => kv.Key, kv => lb.Input(kv.Key, kv.Value.ElementType, kv.Value.Shape!), StringComparer.Ordinal);
        // [B, S] from the attention bias [B, 1, 1, S, S]: the layer reshapes token rows into heads.
        var bias = shared[Context.AttentionBiasName];
        var layerShape = lb.Gather(lb.Shape(bias), lb.Int64s(0, 4));
        var prefix = LayerPrefix(0);
        var layerContext = new Context(lb, OnFirstUse(lb, shapes, name => name.StartsWith(prefix, StringComparison.Ordinal)
            ? name[prefix.Length..]
            : throw new NotSupportedException($"Layer 0 reads '{name}', which is not one of its own parameters; such a model cannot be cut into layer blocks.")), null, null, layerShape);
        foreach (var (name, value) in shared)
            layerContext.Shared[name] = value;
        lb.Output(Layer(layerContext, hidden, 0), HiddenOut);
        var layer = lb.Build();

        var hb = new GraphBuilder("head");
        var headHidden = hb.Input(Hidden, ElementType.Float, hiddenType.Shape!);
        var labels = hb.Input(Labels, ElementType.Int64, Batch, Sequence);
        var headContext = new Context(hb, OnFirstUse(hb, shapes, name => name), null, null, null);
        hb.Output(CausalLmLoss(hb, Head(headContext, headHidden), labels), Loss);
        var head = hb.Build();

        var generic = layer.Inputs.Select(i => i.Name).Where(n => n != Hidden && !shared.ContainsKey(n)).ToList();
        var tensors = new List<IReadOnlyList<string>>(Config.Layers);
        for (int l = 0; l < Config.Layers; l++)
        {
            var names = generic.Select(g => LayerPrefix(l) + g).ToList();
            foreach (var (g, n) in generic.Zip(names))
            {
                if (!shapes.TryGetValue(n, out var shape) || !shape.SequenceEqual(shapes[prefix + g]))
                    throw new NotSupportedException($"Layer {l} has no parameter '{n}' shaped like layer 0's '{prefix + g}'; its layers differ, so one layer graph cannot serve them all.");
            }
            tensors.Add(names);
        }
        var covered = new HashSet<string>(tensors.SelectMany(t => t), StringComparer.Ordinal);
        covered.UnionWith(prologue.Inputs.Concat(head.Inputs).Select(i => i.Name));
        var missing = shapes.Keys.FirstOrDefault(n => !covered.Contains(n));
        if (missing is not null)
            throw new NotSupportedException($"Parameter '{missing}' is read by no block (prologue, layers or head); the blocks would miss its gradient.");
        return new DecoderBlockGraphs(prologue, layer, head, generic, tensors);
    }

    /// <summary>Parameters of a block graph become graph inputs when the block first reads them, under <paramref name="rename"/>.</summary>
    private static Func<string, Value> OnFirstUse(GraphBuilder b, Dictionary<string, long[]> shapes, Func<string, string> rename)
    {
        var made = new Dictionary<string, Value>(StringComparer.Ordinal);
        return name =>
        {
            if (made.TryGetValue(name, out var v))
                return v;
            if (!shapes.TryGetValue(name, out var shape))
                throw new KeyNotFoundException($"The model has no parameter '{name}'.");
            return made[name] = b.Input(rename(name), ElementType.Float, shape.Select(d => new Dim(d)).ToArray());
        };
    }
}
