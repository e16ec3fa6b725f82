using Ferret.Core.Parameters;
using Ferret.Onnx.Artifacts;
using Ferret.Onnx.Checkpoints;
using Microsoft.ML.OnnxRuntime;

namespace Ferret.Training.Runtime;

/// <summary>
/// A first-order training loop kept where the model runs: the parameters <c>W</c> and the accumulated
/// gradient <c>G</c> live in the execution provider's memory (GPU memory under CUDA, native host memory on
/// the CPU), and forward/backward, accumulation, clipping norms and optimizer steps all run there as ONNX
/// graphs. The starting parameters go in once (<see cref="Load"/>) and come back once (<see cref="Store"/> or
/// tensor by tensor through <see cref="Download"/>).
/// <para>
/// Memory: two parameter-sized buffers, as PyTorch's parameters and <c>.grad</c>, plus the optimizer's state
/// (none for plain SGD, one for momentum, two for AdamW). Micro-batches accumulate in place (the accumulating
/// training graph of <see cref="GradientAccumulation"/> with its sum and its output bound to <c>G</c>), and
/// steps update <c>W</c> and the state in place.
/// </para>
/// </summary>
public sealed class ResidentTraining : IDisposable
{
    private readonly ParameterLayout _layout;
    private readonly SessionSettings _settings;
    private readonly RunOptions _runOptions = new();
    private readonly List<IDisposable> _owned = [];
    private readonly IGradientProgram _program;
    private readonly InferenceSession? _eval;
    private OrtIoBinding? _evalBinding;
    private readonly OrtAllocator? _allocator;
    private readonly DeviceVector _weights;
    private readonly DeviceVector _gradient;
    private readonly Dictionary<string, InferenceSession> _kernels = new(StringComparer.Ordinal);
    private DeviceVector[] _state = [];
    private ResidentOptimizer? _stateOwner;
    private int _adamSteps;
    private bool _disposed;

    internal ResidentTraining(ParameterLayout layout, string trainGraphPath, InferenceSession? eval, SessionSettings settings)
    {
        _layout = layout;
        _settings = settings;
        _eval = eval;
        try
        {
            _program = Own(GradientPrograms.Create(layout, trainGraphPath, this));
            if (settings.Device.IsCuda)
            {
                var memory = Own(new OrtMemoryInfo(OrtMemoryInfo.allocatorCUDA, OrtAllocatorType.DeviceAllocator, settings.Device.DeviceId, OrtMemType.Default));
                _allocator = Own(new OrtAllocator(_program.MainSession, memory));
                _weights = Own(DeviceVector.Device(layout, _allocator));
                _gradient = Own(DeviceVector.Device(layout, _allocator));
            }
            else
            {
                _weights = Own(DeviceVector.Host(layout));
                _gradient = Own(DeviceVector.Host(layout));
            }
            _program.Bind(_weights, _gradient);
            ZeroGradient();
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>
    /// Opens resident training straight from a package, without a host copy of the parameters (models past
    /// <see cref="Array.MaxLength"/> parameters train this way); <see cref="Load(ArtifactPackage)"/> fills it.
    /// </summary>
    public static ResidentTraining Open(ArtifactPackage package, SessionSettings settings, bool withEvaluation = true)
    {
        ArgumentNullException.ThrowIfNull(package);
        ArgumentNullException.ThrowIfNull(settings);
        InferenceSession? eval = null;
        try
        {
            if (withEvaluation)
            {
                using var options = settings.CreateOptions();
                eval = new InferenceSession(package.EvalGraphPath, options);
                OnnxTrainer.CheckSignature(eval, package.EvalGraphPath, package.Layout, withGradients: false);
            }
            var resident = new ResidentTraining(package.Layout, package.TrainGraphPath, eval, settings);
            if (eval is not null)
                resident._owned.Insert(0, eval);
            return resident;
        }
        catch
        {
            eval?.Dispose();
            throw;
        }
    }

    /// <summary>How the gradient is computed (tests tell the whole graph from the layered blocks by it).</summary>
    internal IGradientProgram Program => _program;

    /// <summary>Where the buffers live: <c>Cpu</c> or <c>Cuda</c>.</summary>
    public string Location => _weights.IsHost ? "Cpu" : "Cuda";

    /// <summary>Parameter-sized buffers held now: <c>W</c>, <c>G</c> and the optimizer's state.</summary>
    public int ParameterBuffers => 2 + _state.Length;

    /// <summary>Copies the starting parameters from the host and clears the accumulated gradient.</summary>
    public void Load(ReadOnlySpan<float> parameters)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (parameters.Length != _layout.TotalLength)
            throw new ArgumentException($"{parameters.Length} parameters for a model of {_layout.TotalLength}.", nameof(parameters));
        for (int i = 0; i < _layout.Tensors.Count; i++)
        {
            var t = _layout.Tensors[i];
            Upload(i, parameters.Slice(checked((int)t.Offset), checked((int)t.Length)));
        }
        ZeroGradient();
    }

    /// <summary>Reads the package's parameters straight into the resident buffers, tensor by tensor, and clears the accumulated gradient.</summary>
    public void Load(ArtifactPackage package)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentNullException.ThrowIfNull(package);
        using var reader = SafeTensorsReader.Open(package.ParametersPath);
        var staging = new float[_layout.Tensors.Max(t => t.Length)];
        for (int i = 0; i < _layout.Tensors.Count; i++)
        {
            var t = _layout.Tensors[i];
            var span = staging.AsSpan(0, checked((int)t.Length));
            reader.ReadFloat32(t.Name, span);
            Upload(i, span);
        }
        ZeroGradient();
    }

    /// <summary>Copies the current parameters back to the host.</summary>
    public void Store(Span<float> parameters)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (parameters.Length != _layout.TotalLength)
            throw new ArgumentException($"{parameters.Length} parameters for a model of {_layout.TotalLength}.", nameof(parameters));
        for (int i = 0; i < _layout.Tensors.Count; i++)
        {
            var t = _layout.Tensors[i];
            Download(i, parameters.Slice(checked((int)t.Offset), checked((int)t.Length)));
        }
    }

    /// <summary>Writes parameter tensor <paramref name="tensor"/> from the host.</summary>
    public unsafe void Upload(int tensor, ReadOnlySpan<float> values)
    {
        CheckLength(tensor, values.Length);
        if (_weights.IsHost)
        {
            values.CopyTo(_weights.Span(_layout.Tensors[tensor].Offset, values.Length));
            return;
        }
        fixed (float* p = values)
        {
            using var host = OrtValue.CreateTensorValueWithData(OrtMemoryInfo.DefaultInstance, Microsoft.ML.OnnxRuntime.Tensors.TensorElementType.Float,
                [.. _layout.Tensors[tensor].Shape], (IntPtr)p, values.Length * sizeof(float));
            Copy(host, _weights[tensor]);
        }
    }

    /// <summary>Reads parameter tensor <paramref name="tensor"/> into host memory.</summary>
    public void Download(int tensor, Span<float> destination) => Read(_weights, tensor, destination);

    /// <summary>Reads tensor <paramref name="tensor"/> of the accumulated gradient <c>G</c> into host memory.</summary>
    public void DownloadGradient(int tensor, Span<float> destination) => Read(_gradient, tensor, destination);

    private unsafe void Read(DeviceVector vector, int tensor, Span<float> destination)
    {
        CheckLength(tensor, destination.Length);
        if (vector.IsHost)
        {
            vector.Span(_layout.Tensors[tensor].Offset, destination.Length).CopyTo(destination);
            return;
        }
        fixed (float* p = destination)
        {
            using var host = OrtValue.CreateTensorValueWithData(OrtMemoryInfo.DefaultInstance, Microsoft.ML.OnnxRuntime.Tensors.TensorElementType.Float,
                [.. _layout.Tensors[tensor].Shape], (IntPtr)p, destination.Length * sizeof(float));
            Copy(vector[tensor], host);
        }
    }

    /// <summary>Forward and backward on one batch at the resident parameters; the gradient is added to <c>G</c>. Returns the loss.</summary>
    public float ForwardBackward(TokenBatch batch)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentNullException.ThrowIfNull(batch);
        return _program.ForwardBackward(batch, _runOptions);
    }

    /// <summary>The L2 norm of <c>G</c> (before any scaling), for global-norm clipping.</summary>
    public double GradientNorm()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var session = Kernel("sum_of_squares", () => OptimizerGraphs.SumOfSquares(_layout));
        using var binding = session.CreateIoBinding();
        for (int i = 0; i < _layout.Tensors.Count; i++)
            binding.BindInput($"g{i}", _gradient[i]);
        var sum = new float[1];
        using var sumValue = OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, new Memory<float>(sum), []);
        binding.BindOutput("sum_of_squares", sumValue);
        session.RunWithBinding(_runOptions, binding);
        return Math.Sqrt(sum[0]);
    }

    /// <summary>One plain SGD step on the accumulated gradient, <c>W -= rate * G</c>; then clears <c>G</c>.</summary>
    public void Step(float rate) => Step(ResidentOptimizer.PlainSgd, rate, 1f);

    /// <summary>
    /// One optimizer step with the gradient <c>scale * G</c> (the micro-batch mean and a clipping factor fold into
    /// <paramref name="scale"/>), in place; then clears <c>G</c>. Optimizer state is kept between steps of the
    /// same optimizer and starts afresh when another one is used.
    /// </summary>
    public void Step(ResidentOptimizer optimizer, float learningRate, float scale)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentNullException.ThrowIfNull(optimizer);
        if (!float.IsFinite(learningRate) || learningRate < 0)
            throw new ArgumentOutOfRangeException(nameof(learningRate), learningRate, "The learning rate must be finite and non-negative.");
        if (!float.IsFinite(scale))
            throw new ArgumentOutOfRangeException(nameof(scale), scale, "The gradient scale must be finite.");
        EnsureState(optimizer);
        var scalars = new Dictionary<string, float>(StringComparer.Ordinal) { ["scale"] = scale };
        InferenceSession session;
        if (optimizer.Kind == "adamw")
        {
            _adamSteps++;
            float c1 = 1f - MathF.Pow(optimizer.Beta1, _adamSteps);
            float c2 = 1f - MathF.Pow(optimizer.Beta2, _adamSteps);
            scalars["b1"] = optimizer.Beta1;
            scalars["one_minus_b1"] = 1f - optimizer.Beta1;
            scalars["b2"] = optimizer.Beta2;
            scalars["one_minus_b2"] = 1f - optimizer.Beta2;
            scalars["decay"] = 1f - (learningRate * optimizer.WeightDecay);
            scalars["step_size"] = learningRate / c1;
            scalars["inv_sqrt_c2"] = 1f / MathF.Sqrt(c2);
            scalars["eps"] = optimizer.Epsilon;
            session = Kernel("adamw", () => OptimizerGraphs.AdamW(_layout));
        }
        else
        {
            bool momentum = optimizer.Momentum > 0, decay = optimizer.WeightDecay > 0;
            scalars["lr"] = learningRate;
            if (momentum)
                scalars["mu"] = optimizer.Momentum;
            if (decay)
                scalars["wd"] = optimizer.WeightDecay;
            session = Kernel($"sgd-{momentum}-{optimizer.Nesterov}-{decay}", () => OptimizerGraphs.Sgd(_layout, momentum, optimizer.Nesterov, decay));
        }
        using (var binding = session.CreateIoBinding())
        using (var values = new DisposableList())
        {
            foreach (var (name, value) in scalars)
            {
                var v = OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, new Memory<float>([value]), []);
                values.Add(v);
                binding.BindInput(name, v);
            }
            var inputs = session.InputMetadata;
            for (int i = 0; i < _layout.Tensors.Count; i++)
            {
                binding.BindInput($"w{i}", _weights[i]);
                binding.BindInput($"g{i}", _gradient[i]);
                binding.BindOutput($"w_out{i}", _weights[i]);
                if (inputs.ContainsKey($"m{i}"))
                {
                    binding.BindInput($"m{i}", _state[0][i]);
                    binding.BindOutput($"m_out{i}", _state[0][i]);
                }
                if (inputs.ContainsKey($"v{i}"))
                {
                    binding.BindInput($"v{i}", _state[1][i]);
                    binding.BindOutput($"v_out{i}", _state[1][i]);
                }
            }
            session.RunWithBinding(_runOptions, binding);
        }
        ZeroGradient();
    }

    /// <summary>Forward only, at the resident parameters (needs the evaluation graph).</summary>
    public float Loss(TokenBatch batch)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentNullException.ThrowIfNull(batch);
        if (_eval is null)
            throw new InvalidOperationException("This trainer was opened without an evaluation graph.");
        if (_evalBinding is null)
        {
            _evalBinding = Own(_eval.CreateIoBinding());
            for (int i = 0; i < _layout.Tensors.Count; i++)
                _evalBinding.BindInput(_layout.Tensors[i].Name, _weights[i]);
        }
        var loss = new float[1];
        using var lossValue = OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, new Memory<float>(loss), []);
        _evalBinding.BindOutput("loss", lossValue);
        using (OnnxTrainer.BindBatch(_eval, _evalBinding, batch))
            _eval.RunWithBinding(_runOptions, _evalBinding);
        return loss[0];
    }

    /// <summary>Ends ONNX Runtime profiling of the training session and returns the trace file, if profiling was on.</summary>
    public string EndProfiling() => _program.EndProfiling();

    private void EnsureState(ResidentOptimizer optimizer)
    {
        if (_stateOwner is not null && _stateOwner.Equals(optimizer))
            return;
        foreach (var s in _state)
        {
            _owned.Remove(s);
            s.Dispose();
        }
        _state = new DeviceVector[optimizer.StateBuffers];
        for (int k = 0; k < _state.Length; k++)
        {
            _state[k] = Own(_allocator is null ? DeviceVector.Host(_layout) : DeviceVector.Device(_layout, _allocator));
            Zero(_state[k]);
        }
        _stateOwner = optimizer;
        _adamSteps = 0;
    }

    private void ZeroGradient() => Zero(_gradient);

    private void Zero(DeviceVector vector)
    {
        if (vector.IsHost)
        {
            for (int i = 0; i < _layout.Tensors.Count; i++)
            {
                var t = _layout.Tensors[i];
                vector.Span(t.Offset, checked((int)t.Length)).Clear();
            }
            return;
        }
        var session = Kernel("zeros", () => OptimizerGraphs.Zeros(_layout));
        using var binding = session.CreateIoBinding();
        for (int i = 0; i < _layout.Tensors.Count; i++)
            binding.BindOutput($"y{i}", vector[i]);
        session.RunWithBinding(_runOptions, binding);
    }

    private void Copy(OrtValue from, OrtValue to)
    {
        var session = Kernel("copy", OptimizerGraphs.Copy);
        using var binding = session.CreateIoBinding();
        binding.BindInput("x", from);
        binding.BindOutput("y", to);
        session.RunWithBinding(_runOptions, binding);
    }

    private void CheckLength(int tensor, int length)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentOutOfRangeException.ThrowIfNegative(tensor);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(tensor, _layout.Tensors.Count);
        if (length != _layout.Tensors[tensor].Length)
            throw new ArgumentException($"Tensor '{_layout.Tensors[tensor].Name}' has {_layout.Tensors[tensor].Length} elements, not {length}.");
    }

    private InferenceSession Kernel(string name, Func<byte[]> model)
    {
        if (!_kernels.TryGetValue(name, out var session))
            _kernels[name] = session = Own(Session(model(), quiet: true));
        return session;
    }

    internal InferenceSession Session(byte[] model, bool quiet, string graph = "a generated kernel graph")
    {
        using var options = _settings.CreateOptions();
        // Buffer kernels run between training steps: their CPU threads must not spin-wait and starve the training session's.
        if (quiet)
        {
            options.AddSessionConfigEntry("session.intra_op.allow_spinning", "0");
            options.EnableProfiling = false;
        }
        return SessionSettings.Open(() => new InferenceSession(model, options), graph);
    }

    private T Own<T>(T disposable)
        where T : IDisposable
    {
        _owned.Add(disposable);
        return disposable;
    }

    public void Dispose()
    {
        if (_disposed)
            return;
        _disposed = true;
        _runOptions.Dispose();
        for (int i = _owned.Count - 1; i >= 0; i--)
            _owned[i].Dispose();
        _owned.Clear();
    }

    private sealed class DisposableList : List<IDisposable>, IDisposable
    {
        public void Dispose()
        {
            foreach (var item in this)
                item.Dispose();
        }
    }
}
