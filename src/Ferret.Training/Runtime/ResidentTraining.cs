using Ferret.Core.Parameters;
using Ferret.Onnx.Graphs;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace Ferret.Training.Runtime;

/// <summary>
/// Parameters, gradients and the accumulated gradient of a trainer kept in ONNX Runtime memory of the
/// session's device (GPU memory under CUDA), so a whole first-order local loop runs where the model runs:
/// the starting parameters go in once, every forward/backward, accumulation and SGD update happens in
/// device memory, and only the final parameters come back once. The optimizer is itself a small ONNX graph
/// (standard operators) run on the same execution provider. Buffers: two parameter copies (an update never
/// writes the buffer it reads), the gradient, and two accumulators: five times the parameter count.
/// Scalar hyper-parameters (the learning rate) and the loss travel through host memory.
/// </summary>
public sealed class ResidentTraining : IDisposable
{
    private readonly ParameterLayout _layout;
    private readonly InferenceSession _train;
    private readonly OrtIoBinding _trainBinding;
    private readonly OrtMemoryInfo _memory;
    private readonly OrtAllocator _allocator;
    private readonly RunOptions _runOptions = new();
    private readonly List<IDisposable> _owned = [];
    private readonly OrtValue[][] _weights;
    private readonly OrtValue[] _gradient;
    private readonly OrtValue[][] _sums;
    private readonly InferenceSession _copy, _accumulate, _step;
    private readonly float[] _loss = new float[1];
    private readonly float[] _rate = new float[1];
    private readonly OrtValue _lossValue, _rateValue;
    private int _w, _s;
    private bool _sumInGradient;

    internal ResidentTraining(ParameterLayout layout, InferenceSession train, SessionSettings settings, IReadOnlyList<string> gradientNames)
    {
        _layout = layout;
        _train = train;
        try
        {
            if (settings.Device.IsCuda)
            {
                _memory = Own(new OrtMemoryInfo(OrtMemoryInfo.allocatorCUDA, OrtAllocatorType.DeviceAllocator, settings.Device.DeviceId, OrtMemType.Default));
                _allocator = Own(new OrtAllocator(train, _memory));
            }
            else
            {
                _memory = OrtMemoryInfo.DefaultInstance;
                _allocator = OrtAllocator.DefaultInstance;
            }
            _weights = [Allocate(), Allocate()];
            _gradient = Allocate();
            _sums = [Allocate(), Allocate()];
            _lossValue = Own(OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, new Memory<float>(_loss), []));
            _rateValue = Own(OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, new Memory<float>(_rate), []));

            _trainBinding = Own(train.CreateIoBinding());
            for (int i = 0; i < layout.Tensors.Count; i++)
                _trainBinding.BindOutput(gradientNames[i], _gradient[i]);
            _trainBinding.BindOutput("loss", _lossValue);
            BindWeights();

            // The optimizer as ONNX graphs over every parameter tensor: y_i = x_i; y_i = s_i + g_i; y_i = w_i - rate * s_i.
            _copy = Session(settings, Graph("copy", (b, i, input) => b.Identity(input("x"))));
            _accumulate = Session(settings, Graph("accumulate", (b, i, input) => b.Add(input("s"), input("g"))));
            _step = Session(settings, Graph("sgd", (b, i, input) => b.Sub(input("w"), b.Mul(input("s"), b.ValueOf("rate"))), withRate: true));
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>Where the buffers live: <c>Cpu</c> or <c>Cuda</c>.</summary>
    public string Location => _memory.Name;

    /// <summary>Copies the starting parameters from the host into device memory.</summary>
    public void Load(ReadOnlySpan<float> parameters)
    {
        var host = HostViews(parameters.ToArray(), out var views);
        using (views)
            Run(_copy, [("x", host)], _weights[_w]);
    }

    /// <summary>Copies the current device parameters back to the host.</summary>
    public void Store(Span<float> parameters)
    {
        var buffer = new float[_layout.TotalLength];
        var host = HostViews(buffer, out var views);
        using (views)
            Run(_copy, [("x", _weights[_w])], host);
        buffer.CopyTo(parameters);
    }

    /// <summary>
    /// Forward and backward on one batch at the device parameters; the gradient starts the accumulated sum
    /// (<paramref name="first"/>) or is added to it. Returns the loss. A lone gradient is stepped on where it
    /// lies; it is copied aside only when a second micro-batch needs the gradient buffer.
    /// </summary>
    public float ForwardBackward(TokenBatch batch, bool first)
    {
        ArgumentNullException.ThrowIfNull(batch);
        if (!first && _sumInGradient)
            Run(_copy, [("x", _gradient)], _sums[_s]);
        using (OnnxTrainer.BindBatch(_train, _trainBinding, batch))
            _train.RunWithBinding(_runOptions, _trainBinding);
        if (!first)
        {
            Run(_accumulate, [("s", _sums[_s]), ("g", _gradient)], _sums[1 - _s]);
            _s = 1 - _s;
        }
        _sumInGradient = first;
        return _loss[0];
    }

    /// <summary>One SGD step on the accumulated gradient: <c>w -= rate * sum</c>, into the other parameter buffer.</summary>
    public void Step(float rate)
    {
        _rate[0] = rate;
        Run(_step, [("w", _weights[_w]), ("s", _sumInGradient ? _gradient : _sums[_s])], _weights[1 - _w]);
        _w = 1 - _w;
        BindWeights();
    }

    private void BindWeights()
    {
        for (int i = 0; i < _layout.Tensors.Count; i++)
            _trainBinding.BindInput(_layout.Tensors[i].Name, _weights[_w][i]);
    }

    /// <summary>Runs an optimizer graph: input group <c>name</c> binds <c>name{i}</c> for every tensor, outputs <c>y{i}</c>.</summary>
    private void Run(InferenceSession session, IReadOnlyList<(string Name, OrtValue[] Values)> inputs, OrtValue[] outputs)
    {
        using var binding = session.CreateIoBinding();
        foreach (var (name, values) in inputs)
        {
            for (int i = 0; i < values.Length; i++)
                binding.BindInput(name + i, values[i]);
        }
        if (session.InputMetadata.ContainsKey("rate"))
            binding.BindInput("rate", _rateValue);
        for (int i = 0; i < outputs.Length; i++)
            binding.BindOutput("y" + i, outputs[i]);
        session.RunWithBinding(_runOptions, binding);
    }

    /// <summary>Zero-copy views of a host flat buffer, one per parameter tensor.</summary>
    private OrtValue[] HostViews(float[] buffer, out IDisposable owner)
    {
        var views = _layout.Tensors.Select(t => OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance,
            new Memory<float>(buffer, checked((int)t.Offset), checked((int)t.Length)), [.. t.Shape])).ToArray();
        owner = new Disposer(views);
        return views;
    }

    /// <summary>A graph applying <paramref name="body"/> to every parameter tensor; <c>input(prefix)</c> declares <c>prefix{i}</c>.</summary>
    private byte[] Graph(string name, Func<GraphBuilder, int, Func<string, Value>, Value> body, bool withRate = false)
    {
        var b = new GraphBuilder(name);
        if (withRate)
            b.Input("rate", ElementType.Float);
        for (int i = 0; i < _layout.Tensors.Count; i++)
        {
            var shape = _layout.Tensors[i].Shape.Select(d => (Dim)d).ToArray();
            int index = i;
            b.Output(body(b, i, prefix => b.Input(prefix + index, ElementType.Float, shape)), "y" + i);
        }
        return new OnnxModel(b.Graph, b.Opset).ToBytes();
    }

    private InferenceSession Session(SessionSettings settings, byte[] model)
    {
        using var options = settings.CreateOptions();
        // These run between training steps: their CPU threads must not spin-wait and starve the training session's.
        options.AddSessionConfigEntry("session.intra_op.allow_spinning", "0");
        return Own(new InferenceSession(model, options));
    }

    /// <summary>One tensor per parameter in the provider's memory.</summary>
    private OrtValue[] Allocate() =>
        _layout.Tensors.Select(t => Own(OrtValue.CreateAllocatedTensorValue(_allocator, TensorElementType.Float, [.. t.Shape]))).ToArray();

    private T Own<T>(T disposable)
        where T : IDisposable
    {
        _owned.Add(disposable);
        return disposable;
    }

    public void Dispose()
    {
        _runOptions.Dispose();
        for (int i = _owned.Count - 1; i >= 0; i--)
            _owned[i].Dispose();
        _owned.Clear();
    }

    private sealed class Disposer(IEnumerable<IDisposable> items) : IDisposable
    {
        public void Dispose()
        {
            foreach (var item in items)
                item.Dispose();
        }
    }
}
