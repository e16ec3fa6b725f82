using Ferret.Onnx.Graphs;

namespace Ferret.Onnx.Autodiff;

/// <summary>Reduces a gradient over the axes along which its forward input was broadcast.</summary>
internal static class Broadcasting
{
    public static Value ReduceTo(GraphBuilder b, Value grad, Value target)
    {
        if (grad.Type.SameShape(target.Type))
            return grad;
        var g = grad.Shape;
        var t = target.Shape;
        if (g is null || t is null)
            throw new NotSupportedException($"Cannot reduce gradient '{grad.Name}' to the shape of '{target.Name}': a rank is unknown.");
        int lead = g.Length - t.Length;
        if (lead < 0)
            throw new NotSupportedException($"Gradient '{grad.Name}' has lower rank than its input '{target.Name}'.");
        var axes = new List<long>();
        bool dynamic = false;
        for (int i = 0; i < g.Length; i++)
        {
            if (i < lead)
            {
                axes.Add(i);
                continue;
            }
            var td = t[i - lead];
            var gd = g[i];
            if (td.SameAs(gd))
                continue;
            if (td.Value == 1)
            {
                if (gd.Value != 1)
                    axes.Add(i);
                continue;
            }
            if (td.IsStatic && gd.IsStatic)
                throw new NotSupportedException($"Gradient '{grad.Name}' dimension {i} is {gd}, its input '{target.Name}' has {td}: not a broadcast.");
            if (!(td.IsStatic || gd.Value == 1))
                dynamic = true;
        }
        if (dynamic)
            return Dynamic(b, grad, target, lead);
        // Leading axes go away entirely; the others stay as size-1 dimensions.
        var result = grad;
        if (lead > 0)
            result = b.ReduceSum(result, Enumerable.Range(0, lead).Select(i => (long)i).ToArray(), keepDims: false);
        var inner = axes.Where(a => a >= lead).Select(a => a - lead).ToArray();
        if (inner.Length > 0)
            result = b.ReduceSum(result, inner, keepDims: true);
        return result;
    }

    /// <summary>Runtime version: axes where the (left-padded) input shape differs from the gradient's.</summary>
    private static Value Dynamic(GraphBuilder b, Value grad, Value target, int lead)
    {
        var gShape = b.Shape(grad);
        var tShape = b.Shape(target);
        if (lead > 0)
            tShape = b.Concat(0, b.Int64s(Enumerable.Repeat(1L, lead).ToArray()), tShape);
        var differ = b.Not(b.Equal(tShape, gShape));
        var axes = b.Reshape(b.Op("NonZero", [differ])[0], -1);
        var reduced = b.Op("ReduceSum", [grad, axes], 1, new Dictionary<string, AttributeValue> { ["keepdims"] = 1L, ["noop_with_empty_axes"] = 1L },
            [grad.Type])[0];
        return b.Op("Reshape", [reduced, b.Shape(target)], 1, null, [target.Type with { ElementType = grad.ElementType }])[0];
    }
}
