namespace Ferret.Onnx.Graphs;

/// <summary>
/// Output types of the operators Ferret.NET builds and differentiates, with symbolic dimensions carried
/// through. Where a size cannot be known without running the graph the dimension is left unknown; where
/// even the rank cannot be known the shape is null.
/// </summary>
internal static class ShapeInference
{
    public static TensorType[] Infer(string op, IReadOnlyList<TensorType?> inputs, IReadOnlyDictionary<string, AttributeValue> attrs, int outputs, IReadOnlyList<TensorData?> constants)
    {
        TensorType? x = inputs.Count > 0 ? inputs[0] : null;
        var et = x?.ElementType ?? ElementType.Float;
        TensorType Same() => x ?? new TensorType(et, null);
        TensorType Of(Dim[]? s, ElementType? t = null) => new(t ?? et, s);
        long Int(string name, long d) => attrs.TryGetValue(name, out var a) && a is AttributeValue.Int i ? i.Value : d;
        long[]? Ints(string name) => attrs.TryGetValue(name, out var a) && a is AttributeValue.Ints i ? i.Value : null;
        long[]? ConstInts(int index) => index < constants.Count ? constants[index]?.ToInt64s() : null;

        switch (op)
        {
            case "Add" or "Sub" or "Mul" or "Div" or "Pow" or "Max" or "Min" or "Sum" or "PRelu":
                return [Of(Broadcast(inputs))];
            case "Equal" or "Less" or "Greater" or "LessOrEqual" or "GreaterOrEqual" or "And" or "Or" or "Xor":
                return [Of(Broadcast(inputs), ElementType.Bool)];
            case "Not":
                return [Of(x?.Shape, ElementType.Bool)];
            case "Where":
                return [new TensorType(inputs[1]?.ElementType ?? et, Broadcast(inputs))];
            case "Neg" or "Sqrt" or "Reciprocal" or "Exp" or "Log" or "Tanh" or "Sigmoid" or "Erf" or "Relu" or "Abs"
                or "Softmax" or "LogSoftmax" or "Identity" or "Trilu" or "Clip" or "Sin" or "Cos" or "Sign" or "Floor" or "Ceil"
                or "ScatterND" or "ScatterElements" or "Dropout" or "Gelu":
                return outputs == 1 ? [Same()] : [Same(), Of(x?.Shape, ElementType.Bool)];
            case "Cast":
                return [Of(x?.Shape, (ElementType)Int("to", (long)et))];
            case "Shape":
                return [Of(x?.Shape is null ? [Dim.Unknown] : [x.Shape.Length], ElementType.Int64)];
            case "Size":
                return [Of([], ElementType.Int64)];
            case "MatMul":
                return [Of(MatMul(x?.Shape, inputs[1]?.Shape))];
            case "Gemm":
                {
                    var a = x?.Shape;
                    var b = inputs[1]?.Shape;
                    if (a is null || b is null)
                        return [Of(null)];
                    var m = Int("transA", 0) != 0 ? a[1] : a[0];
                    var n = Int("transB", 0) != 0 ? b[0] : b[1];
                    return [Of([m, n])];
                }
            case "ReduceSum" or "ReduceMean" or "ReduceMax" or "ReduceMin" or "ReduceSumSquare" or "ReduceL2":
                {
                    var axes = op == "ReduceSum" || inputs.Count > 1 ? ConstInts(1) ?? Ints("axes") : Ints("axes") ?? ConstInts(1);
                    bool keep = Int("keepdims", 1) != 0;
                    if (x?.Shape is null)
                        return [Of(null)];
                    if (axes is null)
                    {
                        bool hasAxesInput = inputs.Count > 1 && inputs[1] is not null;
                        if (hasAxesInput)
                            return [Of(keep ? x.Shape.Select(_ => Dim.Unknown).ToArray() : null)];
                        if (Int("noop_with_empty_axes", 0) != 0)
                            return [Same()];
                        axes = Enumerable.Range(0, x.Shape.Length).Select(i => (long)i).ToArray();
                    }
                    var norm = axes.Select(a => Normalize(a, x.Shape.Length)).ToHashSet();
                    var dims = new List<Dim>();
                    for (int i = 0; i < x.Shape.Length; i++)
                    {
                        if (!norm.Contains(i))
                            dims.Add(x.Shape[i]);
                        else if (keep)
                            dims.Add(1);
                    }
                    return [Of([.. dims])];
                }
            case "LayerNormalization":
                {
                    if (x?.Shape is null)
                        return [Same(), Of(null, ElementType.Float), Of(null, ElementType.Float)];
                    int axis = Normalize(Int("axis", -1), x.Shape.Length);
                    var stat = x.Shape.Select((d, i) => i < axis ? d : new Dim(1)).ToArray();
                    TensorType[] all = [Same(), Of(stat, ElementType.Float), Of(stat, ElementType.Float)];
                    return all[..outputs];
                }
            case "Gather":
                {
                    var idx = inputs[1]?.Shape;
                    if (x?.Shape is null || idx is null)
                        return [Of(null)];
                    int axis = Normalize(Int("axis", 0), x.Shape.Length);
                    return [Of([.. x.Shape[..axis], .. idx, .. x.Shape[(axis + 1)..]])];
                }
            case "GatherElements":
                return [Of(inputs[1]?.Shape)];
            case "Reshape":
                {
                    var target = ConstInts(1);
                    if (target is null)
                        return [Of(null)];
                    var dims = new Dim[target.Length];
                    int inferred = -1;
                    for (int i = 0; i < target.Length; i++)
                    {
                        dims[i] = target[i] switch
                        {
                            0 when Int("allowzero", 0) == 0 => x?.Shape is { } s && i < s.Length ? s[i] : Dim.Unknown,
                            -1 => Dim.Unknown,
                            var v => new Dim(v),
                        };
                        if (target[i] == -1)
                            inferred = i;
                    }
                    if (inferred >= 0 && x?.StaticSize is long total && dims.Where((_, i) => i != inferred).All(d => d.IsStatic))
                    {
                        long rest = dims.Where((_, i) => i != inferred).Aggregate(1L, (a, d) => a * d.Value!.Value);
                        dims[inferred] = rest == 0 ? Dim.Unknown : new Dim(total / rest);
                    }
                    return [Of(dims)];
                }
            case "Flatten":
                {
                    if (x?.Shape is null)
                        return [Of([Dim.Unknown, Dim.Unknown])];
                    int axis = Normalize(Int("axis", 1), x.Shape.Length + 1);
                    return [Of([Product(x.Shape[..axis]), Product(x.Shape[axis..])])];
                }
            case "Transpose":
                {
                    if (x?.Shape is null)
                        return [Of(null)];
                    var perm = Ints("perm") ?? Enumerable.Range(0, x.Shape.Length).Reverse().Select(i => (long)i).ToArray();
                    return [Of(perm.Select(p => x.Shape[(int)p]).ToArray())];
                }
            case "Squeeze":
                {
                    var axes = ConstInts(1) ?? Ints("axes");
                    if (x?.Shape is null)
                        return [Of(null)];
                    if (axes is null)
                        return [Of(x.Shape.All(d => d.IsStatic) ? x.Shape.Where(d => d.Value != 1).ToArray() : null)];
                    var set = axes.Select(a => Normalize(a, x.Shape.Length)).ToHashSet();
                    return [Of(x.Shape.Where((_, i) => !set.Contains(i)).ToArray())];
                }
            case "Unsqueeze":
                {
                    var axes = ConstInts(1) ?? Ints("axes");
                    if (x?.Shape is null || axes is null)
                        return [Of(null)];
                    int rank = x.Shape.Length + axes.Length;
                    var set = axes.Select(a => Normalize(a, rank)).ToHashSet();
                    var dims = new Dim[rank];
                    int j = 0;
                    for (int i = 0; i < rank; i++)
                        dims[i] = set.Contains(i) ? new Dim(1) : x.Shape[j++];
                    return [Of(dims)];
                }
            case "Slice":
                {
                    var starts = ConstInts(1);
                    var ends = ConstInts(2);
                    if (x?.Shape is null)
                        return [Of(null)];
                    if (starts is null || ends is null)
                        return [Of(x.Shape.Select(_ => Dim.Unknown).ToArray())];
                    var axes = ConstInts(3) ?? Enumerable.Range(0, starts.Length).Select(i => (long)i).ToArray();
                    var steps = ConstInts(4) ?? Enumerable.Repeat(1L, starts.Length).ToArray();
                    var dims = x.Shape.ToArray();
                    for (int i = 0; i < axes.Length; i++)
                    {
                        int a = Normalize(axes[i], dims.Length);
                        dims[a] = SliceDim(dims[a], starts[i], ends[i], steps[i]);
                    }
                    return [Of(dims)];
                }
            case "Concat":
                {
                    if (inputs.Any(i => i?.Shape is null))
                        return [Of(null)];
                    var first = x!.Shape!;
                    int axis = Normalize(Int("axis", 0), first.Length);
                    var dims = first.ToArray();
                    dims[axis] = inputs.All(i => i!.Shape![axis].IsStatic) ? new Dim(inputs.Sum(i => i!.Shape![axis].Value!.Value)) : Dim.Unknown;
                    return [Of(dims)];
                }
            case "Split":
                {
                    var sizes = ConstInts(1) ?? Ints("split");
                    if (x?.Shape is null)
                        return Enumerable.Repeat(Of(null), outputs).ToArray();
                    int axis = Normalize(Int("axis", 0), x.Shape.Length);
                    return Enumerable.Range(0, outputs).Select(o =>
                    {
                        var dims = x.Shape.ToArray();
                        dims[axis] = sizes is not null ? new Dim(sizes[o]) : x.Shape[axis].Value is long v && v % outputs == 0 ? new Dim(v / outputs) : Dim.Unknown;
                        return Of(dims);
                    }).ToArray();
                }
            case "Expand":
                {
                    var shape = ConstInts(1);
                    if (shape is null)
                        return [Of(inputs[1]?.Shape is [var len] && len.Value is long r ? Enumerable.Repeat(Dim.Unknown, (int)Math.Max(r, x?.Shape?.Length ?? 0)).ToArray() : null)];
                    return [Of(Broadcast([x, new TensorType(et, shape.Select(v => new Dim(v)).ToArray())]))];
                }
            case "Range":
                return [Of([Dim.Unknown])];
            case "ConstantOfShape":
                {
                    var shape = ConstInts(0);
                    var value = attrs.TryGetValue("value", out var v) && v is AttributeValue.Tensor t ? t.Value.ElementType : ElementType.Float;
                    return [Of(shape?.Select(d => new Dim(d)).ToArray() ?? (inputs[0]?.Shape is [var len] && len.Value is long r ? Enumerable.Repeat(Dim.Unknown, (int)r).ToArray() : null), value)];
                }
            case "Constant":
                return [attrs.TryGetValue("value", out var cv) && cv is AttributeValue.Tensor ct ? ct.Value.Type : Of(null)];
            case "OneHot":
                {
                    var depth = ConstInts(1);
                    var valuesType = inputs.Count > 2 ? inputs[2]?.ElementType ?? et : et;
                    if (x?.Shape is null)
                        return [Of(null, valuesType)];
                    int axis = Normalize(Int("axis", -1), x.Shape.Length + 1);
                    var dims = x.Shape.ToList();
                    dims.Insert(axis, depth is { Length: 1 } ? new Dim(depth[0]) : Dim.Unknown);
                    return [Of([.. dims], valuesType)];
                }
            case "SoftmaxCrossEntropyLoss":
                {
                    var scoresType = x;
                    var loss = attrs.TryGetValue("reduction", out var r) && r is AttributeValue.String { Value: "none" }
                        ? Of(inputs[1]?.Shape)
                        : Of([]);
                    return outputs == 1 ? [loss] : [loss, Of(scoresType?.Shape)];
                }
            case "NonZero":
                return [Of(x?.Shape is null ? [Dim.Unknown, Dim.Unknown] : [x.Shape.Length, Dim.Unknown], ElementType.Int64)];
            case "Pad":
                {
                    var pads = ConstInts(1);
                    if (x?.Shape is null)
                        return [Of(null)];
                    if (pads is null)
                        return [Of(x.Shape.Select(_ => Dim.Unknown).ToArray())];
                    int rank = x.Shape.Length;
                    return [Of(x.Shape.Select((d, i) => pads[i] == 0 && pads[i + rank] == 0 ? d : d.Value is long v ? new Dim(v + pads[i] + pads[i + rank]) : Dim.Unknown).ToArray())];
                }
            default:
                return Enumerable.Repeat(Of(null), outputs).ToArray();
        }
    }

    public static int Normalize(long axis, int rank)
    {
        long a = axis < 0 ? axis + rank : axis;
        if (a < 0 || a >= rank)
            throw new ArgumentOutOfRangeException(nameof(axis), axis, $"Axis {axis} is outside a rank-{rank} tensor.");
        return (int)a;
    }

    private static Dim Product(Dim[] dims) =>
        dims.All(d => d.IsStatic) ? new Dim(dims.Aggregate(1L, (a, d) => a * d.Value!.Value)) : dims.Length == 1 ? dims[0] : Dim.Unknown;

    private static Dim SliceDim(Dim dim, long start, long end, long step)
    {
        if (dim.Value is long n)
        {
            long s = start < 0 ? Math.Max(0, start + n) : Math.Min(start, n);
            long e = end < 0 ? Math.Max(step < 0 ? -1 : 0, end + n) : Math.Min(end, step < 0 ? n - 1 : n);
            long len = step > 0 ? Math.Max(0, (e - s + step - 1) / step) : Math.Max(0, (s - e - step - 1) / -step);
            return new Dim(len);
        }
        return start == 0 && end >= int.MaxValue && step == 1 ? dim : Dim.Unknown;
    }

    /// <summary>Numpy broadcasting of the inputs' shapes (right-aligned).</summary>
    public static Dim[]? Broadcast(IEnumerable<TensorType?> inputs)
    {
        var shapes = inputs.Where(i => i is not null).Select(i => i!.Shape).ToList();
        if (shapes.Count == 0 || shapes.Any(s => s is null))
            return null;
        int rank = shapes.Max(s => s!.Length);
        var result = new Dim[rank];
        for (int i = 0; i < rank; i++)
        {
            Dim? acc = null;
            foreach (var s in shapes)
            {
                int j = i - (rank - s!.Length);
                if (j < 0)
                    continue;
                var d = s[j];
                acc = acc is not { } a ? d
                    : a.Value == 1 ? d
                    : d.Value == 1 ? a
                    : a.SameAs(d) ? a
                    : a.IsStatic ? a
                    : d.IsStatic ? d
                    : Dim.Unknown;
            }
            result[i] = acc ?? new Dim(1);
        }
        return result;
    }

    private static Dim[]? MatMul(Dim[]? a, Dim[]? b)
    {
        if (a is null || b is null)
            return null;
        bool aVec = a.Length == 1, bVec = b.Length == 1;
        var aa = aVec ? [1, a[0]] : a;
        var bb = bVec ? [b[0], 1] : b;
        var batch = Broadcast([new TensorType(ElementType.Float, aa[..^2]), new TensorType(ElementType.Float, bb[..^2])])!;
        var dims = new List<Dim>(batch);
        if (!aVec)
            dims.Add(aa[^2]);
        if (!bVec)
            dims.Add(bb[^1]);
        return [.. dims];
    }
}
