using Ferret.Onnx.Graphs;

namespace Ferret.Onnx.Autodiff;

/// <summary>What a gradient rule sees: the forward node, its inputs and outputs, the incoming gradients,
/// and a builder that appends backward operators to the graph.</summary>
public sealed class GradientContext
{
    private readonly IReadOnlyList<Value?> _outputGrads;
    private readonly Func<string, bool> _needsGradient;

    internal GradientContext(GraphBuilder builder, Node node, IReadOnlyList<Value?> outputGrads, Func<string, bool> needsGradient)
    {
        B = builder;
        Node = node;
        _outputGrads = outputGrads;
        _needsGradient = needsGradient;
    }

    /// <summary>Appends backward operators.</summary>
    public GraphBuilder B { get; }

    public Node Node { get; }

    public int InputCount => Node.Inputs.Count;

    /// <summary>Forward input <paramref name="i"/>.</summary>
    public Value X(int i) => B.ValueOf(Node.Inputs[i]);

    /// <summary>Forward output <paramref name="i"/>.</summary>
    public Value Y(int i = 0) => B.ValueOf(Node.Outputs[i]);

    /// <summary>Gradient of the loss with respect to output <paramref name="i"/>, or null when none flows.</summary>
    public Value? DY(int i = 0) => i < _outputGrads.Count ? _outputGrads[i] : null;

    public bool HasInput(int i) => Node.Input(i) is not null;

    /// <summary>Whether input <paramref name="i"/> needs a gradient (it depends on a differentiated input).</summary>
    public bool Needs(int i) => Node.Input(i) is { } name && _needsGradient(name);

    /// <summary>The constant value of input <paramref name="i"/> when it is an initializer.</summary>
    public TensorData? Constant(int i) => Node.Input(i) is { } name && B.Graph.Initializers.TryGetValue(name, out var t) ? t : null;

    public ElementType Type => B.ValueOf(Node.Outputs[0]).ElementType;

    public Value Scalar(double v) => B.Scalar(v, Type);

    public NotSupportedException Unsupported(string why) => new($"Cannot differentiate {Node.OpType} node '{Node.Name}': {why}.");

    /// <summary>Sums <paramref name="grad"/> over broadcast axes so it has the shape of <paramref name="target"/>.</summary>
    public Value Unbroadcast(Value grad, Value target) => Broadcasting.ReduceTo(B, grad, target);
}
