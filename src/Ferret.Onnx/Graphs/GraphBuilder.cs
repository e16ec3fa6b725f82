using System.Globalization;

namespace Ferret.Onnx.Graphs;

/// <summary>A value of the graph under construction: its name and type.</summary>
public readonly record struct Value(string Name, TensorType Type)
{
    public ElementType ElementType => Type.ElementType;

    public Dim[]? Shape => Type.Shape;

    public int Rank => Type.Rank;

    public override string ToString() => $"{Name}: {Type}";
}

/// <summary>
/// Builds ONNX graphs one operator at a time, inferring output types (with symbolic dimensions) as it goes.
/// Node and value names follow the module scope, e.g. <c>/model.layers.0/self_attn/MatMul_1</c>, so a graph
/// reads like its Hugging Face module tree in Netron. Constants become initializers, deduplicated.
/// </summary>
public sealed class GraphBuilder
{
    private readonly Graph _graph;
    private readonly List<string> _scopes = [];
    private readonly HashSet<string> _names = new(StringComparer.Ordinal);
    private readonly Dictionary<string, Value> _scalars = new(StringComparer.Ordinal);

    public GraphBuilder(string graphName, int opset = 18)
    {
        _graph = new Graph { Name = graphName };
        Opset = opset;
    }

    /// <summary>Continues building on an existing graph (the autodiff pass appends the backward part).</summary>
    public GraphBuilder(Graph graph, int opset)
    {
        _graph = graph ?? throw new ArgumentNullException(nameof(graph));
        Opset = opset;
        foreach (var i in graph.Inputs)
            _names.Add(i.Name);
        foreach (var k in graph.Initializers.Keys)
            _names.Add(k);
        foreach (var n in graph.Nodes)
        {
            _names.Add(n.Name);
            foreach (var o in n.Outputs)
                _names.Add(o);
        }
    }

    public int Opset { get; }

    /// <summary>The graph being built (live).</summary>
    public Graph Graph => _graph;

    /// <summary>Enters a module scope; names made inside carry its path.</summary>
    public IDisposable Scope(string module)
    {
        _scopes.Add(module);
        return new ScopeExit(this);
    }

    private sealed class ScopeExit(GraphBuilder builder) : IDisposable
    {
        public void Dispose() => builder._scopes.RemoveAt(builder._scopes.Count - 1);
    }

    /// <summary>A name not yet used in the graph, derived from the current scope and a hint.</summary>
    public string Fresh(string hint)
    {
        var prefix = _scopes.Count == 0 ? "/" : "/" + string.Join('/', _scopes) + "/";
        var name = prefix + hint;
        for (int i = 1; !_names.Add(name); i++)
            name = string.Create(CultureInfo.InvariantCulture, $"{prefix}{hint}_{i}");
        return name;
    }

    private string Claim(string name)
    {
        if (!_names.Add(name))
            throw new ArgumentException($"The name '{name}' is already used in graph '{_graph.Name}'.", nameof(name));
        return name;
    }

    public TensorType TypeOf(string name) =>
        _graph.ValueTypes.TryGetValue(name, out var t) ? t : throw new KeyNotFoundException($"Value '{name}' has no known type in graph '{_graph.Name}'.");

    public Value ValueOf(string name) => new(name, TypeOf(name));

    // ---- inputs, outputs, constants ------------------------------------------------------------

    public Value Input(string name, ElementType type, params Dim[] shape)
    {
        var t = new TensorType(type, shape);
        _graph.Inputs.Add(new ValueInfo(Claim(name), t));
        _graph.ValueTypes[name] = t;
        return new Value(name, t);
    }

    /// <summary>Marks a value as a graph output under <paramref name="name"/> (through Identity when renamed).</summary>
    public void Output(Value value, string name)
    {
        if (value.Name != name)
        {
            var node = new Node("Identity", Fresh("Identity"), [value.Name], [Claim(name)]);
            _graph.Nodes.Add(node);
            _graph.ValueTypes[name] = value.Type;
        }
        _graph.Outputs.Add(new ValueInfo(name, value.Type));
    }

    public Value Initializer(string name, TensorData data) => AddInitializer(Claim(name), data);

    private Value AddInitializer(string claimedName, TensorData data)
    {
        ArgumentNullException.ThrowIfNull(data);
        _graph.Initializers[claimedName] = data;
        _graph.ValueTypes[claimedName] = data.Type;
        return new Value(claimedName, data.Type);
    }

    public Value Constant(TensorData data, string hint = "const") => AddInitializer(Fresh(hint), data);

    /// <summary>A scalar constant of a floating-point type (shared by every use).</summary>
    public Value Scalar(double value, ElementType type = ElementType.Float)
    {
        var key = string.Create(CultureInfo.InvariantCulture, $"{type}:{value:R}");
        if (_scalars.TryGetValue(key, out var v))
            return v;
        v = AddInitializer(FreshGlobal("scalar"), TensorData.Scalar(value, type));
        _scalars[key] = v;
        return v;
    }

    /// <summary>A 1-D int64 constant (axes, shapes, starts...).</summary>
    public Value Int64s(params long[] values)
    {
        var key = "i64:" + string.Join(',', values);
        if (_scalars.TryGetValue(key, out var v))
            return v;
        v = AddInitializer(FreshGlobal("ints"), TensorData.FromInt64s(values, values.Length));
        _scalars[key] = v;
        return v;
    }

    /// <summary>A 0-D int64 constant.</summary>
    public Value Int64Scalar(long value)
    {
        var key = string.Create(CultureInfo.InvariantCulture, $"i64s:{value}");
        if (_scalars.TryGetValue(key, out var v))
            return v;
        v = AddInitializer(FreshGlobal("int"), TensorData.FromInt64s([value]));
        _scalars[key] = v;
        return v;
    }

    private string FreshGlobal(string hint)
    {
        var saved = _scopes.ToArray();
        _scopes.Clear();
        try
        {
            return Fresh("constants/" + hint);
        }
        finally
        {
            _scopes.AddRange(saved);
        }
    }

    // ---- generic operator ------------------------------------------------------------------------

    /// <summary>Adds a node; output types are inferred unless given.</summary>
    public Value[] Op(string opType, IReadOnlyList<Value?> inputs, int outputCount = 1,
        IReadOnlyDictionary<string, AttributeValue>? attributes = null, IReadOnlyList<TensorType>? outputTypes = null, string? name = null)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        attributes ??= new Dictionary<string, AttributeValue>();
        var types = outputTypes ?? ShapeInference.Infer(opType, inputs.Select(i => i?.Type).ToList(), attributes, outputCount,
            inputs.Select(i => i is { } v && _graph.Initializers.TryGetValue(v.Name, out var c) ? c : null).ToList());
        var nodeName = Fresh(name ?? opType);
        var outputs = new Value[outputCount];
        for (int i = 0; i < outputCount; i++)
        {
            var outName = Claim(outputCount == 1 ? nodeName + "_output" : string.Create(CultureInfo.InvariantCulture, $"{nodeName}_output_{i}"));
            outputs[i] = new Value(outName, types[i]);
            _graph.ValueTypes[outName] = types[i];
        }
        _graph.Nodes.Add(new Node(opType, nodeName, inputs.Select(i => i?.Name ?? ""), outputs.Select(o => o.Name),
            attributes.ToDictionary(kv => kv.Key, kv => kv.Value, StringComparer.Ordinal)));
        return outputs;
    }

    private Value One(string op, params Value[] inputs) => Op(op, inputs.Select(v => (Value?)v).ToArray())[0];

    private Value One(string op, Value[] inputs, Dictionary<string, AttributeValue> attrs) => Op(op, inputs.Select(v => (Value?)v).ToArray(), 1, attrs)[0];

    // ---- typed helpers ---------------------------------------------------------------------------

    public Value Add(Value a, Value b) => One("Add", a, b);

    public Value Sub(Value a, Value b) => One("Sub", a, b);

    public Value Mul(Value a, Value b) => One("Mul", a, b);

    public Value Div(Value a, Value b) => One("Div", a, b);

    public Value Pow(Value a, Value b) => One("Pow", a, b);

    public Value Max(Value a, Value b) => One("Max", a, b);

    public Value Min(Value a, Value b) => One("Min", a, b);

    public Value Neg(Value x) => One("Neg", x);

    public Value Sqrt(Value x) => One("Sqrt", x);

    public Value Reciprocal(Value x) => One("Reciprocal", x);

    public Value Exp(Value x) => One("Exp", x);

    public Value Log(Value x) => One("Log", x);

    public Value Tanh(Value x) => One("Tanh", x);

    public Value Sigmoid(Value x) => One("Sigmoid", x);

    public Value Erf(Value x) => One("Erf", x);

    public Value Relu(Value x) => One("Relu", x);

    public Value Identity(Value x) => One("Identity", x);

    public Value Not(Value x) => One("Not", x);

    public Value Equal(Value a, Value b) => One("Equal", a, b);

    public Value Less(Value a, Value b) => One("Less", a, b);

    public Value Greater(Value a, Value b) => One("Greater", a, b);

    public Value And(Value a, Value b) => One("And", a, b);

    public Value Where(Value condition, Value a, Value b) => One("Where", condition, a, b);

    public Value MatMul(Value a, Value b) => One("MatMul", a, b);

    public Value Gemm(Value a, Value b, Value? c = null, bool transA = false, bool transB = false, float alpha = 1f, float beta = 1f)
    {
        var attrs = new Dictionary<string, AttributeValue> { ["transA"] = transA ? 1L : 0L, ["transB"] = transB ? 1L : 0L };
        if (alpha != 1f)
            attrs["alpha"] = alpha;
        if (beta != 1f)
            attrs["beta"] = beta;
        return Op("Gemm", c is null ? [a, b] : [a, b, c], 1, attrs)[0];
    }

    public Value Softmax(Value x, long axis = -1) => One("Softmax", [x], new() { ["axis"] = axis });

    public Value LogSoftmax(Value x, long axis = -1) => One("LogSoftmax", [x], new() { ["axis"] = axis });

    public Value ReduceSum(Value x, long[] axes, bool keepDims = true) =>
        One("ReduceSum", [x, Int64s(axes)], new() { ["keepdims"] = keepDims ? 1L : 0L });

    /// <summary>ReduceMean; opset 18 takes the axes as an input.</summary>
    public Value ReduceMean(Value x, long[] axes, bool keepDims = true) => Opset >= 18
        ? One("ReduceMean", [x, Int64s(axes)], new() { ["keepdims"] = keepDims ? 1L : 0L })
        : One("ReduceMean", [x], new() { ["axes"] = axes, ["keepdims"] = keepDims ? 1L : 0L });

    public Value LayerNormalization(Value x, Value scale, Value? bias, long axis = -1, float epsilon = 1e-5f) =>
        Op("LayerNormalization", bias is null ? [x, scale] : [x, scale, bias], 1, new Dictionary<string, AttributeValue> { ["axis"] = axis, ["epsilon"] = epsilon })[0];

    public Value Gather(Value data, Value indices, long axis = 0) => One("Gather", [data, indices], new() { ["axis"] = axis });

    public Value Reshape(Value x, params long[] shape) => One("Reshape", x, Int64s(shape));

    public Value Reshape(Value x, Value shape) => One("Reshape", x, shape);

    public Value Transpose(Value x, params long[] perm) => One("Transpose", [x], new() { ["perm"] = perm });

    public Value Squeeze(Value x, params long[] axes) => One("Squeeze", x, Int64s(axes));

    public Value Unsqueeze(Value x, params long[] axes) => One("Unsqueeze", x, Int64s(axes));

    public Value Slice(Value x, long[] starts, long[] ends, long[] axes, long[]? steps = null) =>
        steps is null ? One("Slice", x, Int64s(starts), Int64s(ends), Int64s(axes)) : One("Slice", x, Int64s(starts), Int64s(ends), Int64s(axes), Int64s(steps));

    public Value Concat(long axis, params Value[] values) => One("Concat", values, new() { ["axis"] = axis });

    public Value[] Split(Value x, long axis, params long[] sizes) =>
        Op("Split", [x, Int64s(sizes)], sizes.Length, new Dictionary<string, AttributeValue> { ["axis"] = axis });

    public Value Expand(Value x, Value shape) => One("Expand", x, shape);

    public Value Cast(Value x, ElementType to) => One("Cast", [x], new() { ["to"] = (long)to });

    public Value Shape(Value x) => One("Shape", x);

    public Value Trilu(Value x, bool upper, Value? k = null) =>
        Op("Trilu", k is null ? [x] : [x, k], 1, new Dictionary<string, AttributeValue> { ["upper"] = upper ? 1L : 0L })[0];

    public Value Range(Value start, Value limit, Value delta) => One("Range", start, limit, delta);

    public Value SoftmaxCrossEntropyLoss(Value scores, Value labels, long? ignoreIndex = null, string reduction = "mean")
    {
        var attrs = new Dictionary<string, AttributeValue> { ["reduction"] = reduction };
        if (ignoreIndex is long ii)
            attrs["ignore_index"] = ii;
        return One("SoftmaxCrossEntropyLoss", [scores, labels], attrs);
    }

    /// <summary>Finishes the graph and checks it.</summary>
    public Graph Build()
    {
        _graph.PruneUnusedInitializers();
        _graph.Validate();
        return _graph;
    }
}
