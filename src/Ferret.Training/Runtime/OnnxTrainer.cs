using Ferret.Core.Parameters;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace Ferret.Training.Runtime;

/// <summary>
/// Runs an exported causal-LM training graph (<c>train.onnx</c>: <c>input_ids</c>, <c>attention_mask</c>,
/// <c>labels</c> and every parameter in, <c>loss</c> and <c>&lt;name&gt;_grad</c> out) over one flat host
/// parameter buffer, <see cref="Parameters"/>, which callers edit in place between runs. Every run computes with
/// the parameters as they are at that moment, on every provider: the CPU reads them zero-copy, a GPU gets them
/// uploaded again before the run (once per <see cref="FreezeParameters"/> scope for evaluation loops). The host
/// path writes gradients into <see cref="Gradients"/>; first-order loops that should stay on the device use
/// <see cref="Resident"/> instead and never touch the host gradient.
/// </summary>
public sealed class OnnxTrainer : IDisposable
{
    private const string InputIds = "input_ids";
    private const string AttentionMask = "attention_mask";
    private const string Labels = "labels";
    private const string LossName = "loss";

    private readonly ParameterLayout _layout;
    private readonly SessionSettings _settings;
    private readonly string _trainGraphPath;
    private readonly RunOptions _runOptions = new();
    private readonly float[] _trainLoss = new float[1];
    private readonly float[] _evalLoss = new float[1];
    private readonly List<IDisposable> _owned = [];
    private readonly Bound? _eval;
    private Bound? _train;
    private float[]? _gradients;
    private int _frozen;
    private bool _disposed;

    public OnnxTrainer(ParameterLayout layout, string trainGraphPath, string? evalGraphPath, SessionSettings settings)
    {
        ArgumentNullException.ThrowIfNull(layout);
        ArgumentNullException.ThrowIfNull(trainGraphPath);
        ArgumentNullException.ThrowIfNull(settings);
        if (layout.TotalLength > Array.MaxLength)
            throw new NotSupportedException($"The model has {layout.TotalLength} parameters; one flat host buffer holds at most {Array.MaxLength}.");
        if (!File.Exists(trainGraphPath))
            throw new FileNotFoundException($"Training graph '{trainGraphPath}' does not exist.", trainGraphPath);
        if (evalGraphPath is not null && !File.Exists(evalGraphPath))
            throw new FileNotFoundException($"Evaluation graph '{evalGraphPath}' does not exist.", evalGraphPath);

        _layout = layout;
        _settings = settings;
        _trainGraphPath = trainGraphPath;
        Device = settings.Device;
        Parameters = new float[layout.TotalLength];
        try
        {
            if (evalGraphPath is not null)
            {
                _eval = Own(new Bound(this, evalGraphPath, withGradients: false));
                _eval.Binding.BindOutput(LossName, Own(OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, new Memory<float>(_evalLoss), [])));
            }
            // A resident trainer runs the accumulating form of the training graph; the plain one opens on first host use.
            if (settings.ResidentParameters ?? settings.Device.IsCuda)
                Resident = Own(new ResidentTraining(layout, trainGraphPath, _eval?.Session, settings));
            else
                OpenTrainSession();
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>The flat parameter vector <c>w</c> (manifest order). Edit it in place between runs.</summary>
    public float[] Parameters { get; }

    /// <summary><c>d loss / d w</c> of the last <see cref="ForwardBackward"/>, flat (allocated on first use).</summary>
    public float[] Gradients
    {
        get
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            OpenTrainSession();
            return _gradients!;
        }
    }

    public ParameterLayout Layout => _layout;

    public ExecutionDevice Device { get; }

    public bool CanEvaluate => _eval is not null;

    /// <summary>
    /// Device-resident buffers for whole first-order loops (on by default under CUDA, see
    /// <see cref="SessionSettings.ResidentParameters"/>); null when this trainer works on host buffers only.
    /// </summary>
    public ResidentTraining? Resident { get; }

    /// <summary>Forward and backward on one batch at <see cref="Parameters"/>: returns the loss and overwrites <see cref="Gradients"/>.</summary>
    public float ForwardBackward(TokenBatch batch)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentNullException.ThrowIfNull(batch);
        OpenTrainSession();
        return Run(_train!, batch, _trainLoss);
    }

    /// <summary>Forward only (the evaluation graph): the loss at <see cref="Parameters"/>.</summary>
    public float Loss(TokenBatch batch)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentNullException.ThrowIfNull(batch);
        if (_eval is null)
            throw new InvalidOperationException("This trainer was opened without an evaluation graph.");
        return Run(_eval, batch, _evalLoss);
    }

    /// <summary>
    /// A promise that <see cref="Parameters"/> do not change until the scope is disposed: a device provider then
    /// gets them once per session instead of before every run (evaluation loops over many batches).
    /// </summary>
    public IDisposable FreezeParameters()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_frozen++ == 0)
        {
            _train?.Stale();
            _eval?.Stale();
        }
        return new Thaw(this);
    }

    private sealed class Thaw(OnnxTrainer trainer) : IDisposable
    {
        private bool _done;

        public void Dispose()
        {
            if (!_done)
                trainer._frozen--;
            _done = true;
        }
    }

    /// <summary>Ends ONNX Runtime profiling of the training session and returns the trace file, if profiling was on.</summary>
    public string EndProfiling() => Resident?.EndProfiling() ?? _train?.Session.EndProfiling() ?? "";

    private float Run(Bound bound, TokenBatch batch, float[] loss)
    {
        bound.Refresh(_frozen > 0);
        using (BindBatch(bound.Session, bound.Binding, batch))
            bound.Session.RunWithBinding(_runOptions, bound.Binding);
        return loss[0];
    }

    private void OpenTrainSession()
    {
        if (_train is not null)
            return;
        var train = Own(new Bound(this, _trainGraphPath, withGradients: true));
        _gradients = new float[_layout.TotalLength];
        foreach (var t in _layout.Tensors)
        {
            train.Binding.BindOutput(GradientName(t.Name), Own(OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance,
                new Memory<float>(_gradients, checked((int)t.Offset), checked((int)t.Length)), [.. t.Shape])));
        }
        train.Binding.BindOutput(LossName, Own(OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, new Memory<float>(_trainLoss), [])));
        _train = train;
    }

    /// <summary>A session with its binding and the host parameters bound as its inputs, kept current.</summary>
    private sealed class Bound : IDisposable
    {
        private readonly HostParameterInputs _inputs;
        private bool _fresh;

        public Bound(OnnxTrainer trainer, string path, bool withGradients)
        {
            using (var options = trainer._settings.CreateOptions())
                Session = SessionSettings.Open(() => new InferenceSession(path, options), path);
            try
            {
                CheckSignature(Session, path, trainer._layout, withGradients);
                Binding = Session.CreateIoBinding();
                _inputs = new HostParameterInputs(trainer._layout, trainer.Parameters, trainer._settings);
                _inputs.Bind(Binding);
                _fresh = true;
            }
            catch
            {
                Dispose();
                throw;
            }
        }

        public InferenceSession Session { get; }

        public OrtIoBinding Binding { get; } = null!;

        /// <summary>Marks the bound copy as possibly out of date (a freeze begins).</summary>
        public void Stale() => _fresh = false;

        /// <summary>Rebinds unless the provider reads the host buffer in place or a freeze holds a current copy.</summary>
        public void Refresh(bool frozen)
        {
            if (_inputs.ReadsInPlace || (frozen && _fresh))
                return;
            _inputs.Bind(Binding);
            _fresh = frozen;
        }

        public void Dispose()
        {
            Binding?.Dispose();
            _inputs?.Dispose();
            Session.Dispose();
        }
    }

    /// <summary>Binds a batch's token ids, attention mask and (when the graph takes them) labels; dispose after the run.</summary>
    internal static IDisposable BindBatch(InferenceSession session, OrtIoBinding binding, TokenBatch batch)
    {
        long[] shape = [batch.Batch, batch.Sequence];
        var values = new DisposableList
        {
            OrtValue.CreateTensorValueFromMemory(batch.InputIds, shape),
            OrtValue.CreateTensorValueFromMemory(batch.AttentionMask, shape),
            OrtValue.CreateTensorValueFromMemory(batch.Labels, shape),
        };
        binding.BindInput(InputIds, values[0]);
        binding.BindInput(AttentionMask, values[1]);
        if (session.InputMetadata.ContainsKey(Labels))
            binding.BindInput(Labels, values[2]);
        return values;
    }

    private sealed class DisposableList : List<OrtValue>, IDisposable
    {
        public void Dispose()
        {
            foreach (var v in this)
                v.Dispose();
        }
    }

    /// <summary>The output name of a parameter's gradient in <c>train.onnx</c>.</summary>
    public static string GradientName(string parameterName) => parameterName + "_grad";

    /// <summary>Checks that a graph takes every parameter of the layout (and, for training, returns its gradient) with the layout's shapes.</summary>
    internal static void CheckSignature(InferenceSession session, string path, ParameterLayout layout, bool withGradients)
    {
        var inputs = session.InputMetadata;
        foreach (var name in new[] { InputIds, AttentionMask })
        {
            if (!inputs.ContainsKey(name))
                throw new InvalidDataException($"Graph '{path}' has no input '{name}'.");
        }
        if (!session.OutputMetadata.ContainsKey(LossName))
            throw new InvalidDataException($"Graph '{path}' has no output '{LossName}'.");
        foreach (var t in layout.Tensors)
        {
            if (!inputs.TryGetValue(t.Name, out var meta))
                throw new InvalidDataException($"Graph '{path}' has no input for parameter '{t.Name}'.");
            CheckShape(path, t, meta, t.Name);
            if (withGradients)
            {
                var grad = GradientName(t.Name);
                if (!session.OutputMetadata.TryGetValue(grad, out var gmeta))
                    throw new InvalidDataException($"Graph '{path}' has no output '{grad}'.");
                CheckShape(path, t, gmeta, grad);
            }
        }
    }

    private static void CheckShape(string path, ParameterTensor t, NodeMetadata meta, string name)
    {
        if (meta.ElementDataType != TensorElementType.Float)
            throw new InvalidDataException($"Graph '{path}': '{name}' is {meta.ElementDataType}; parameters are float32.");
        var dims = meta.Dimensions;
        bool same = dims.Length == t.Shape.Count;
        for (int i = 0; same && i < dims.Length; i++)
            same = dims[i] == t.Shape[i];
        if (!same)
            throw new InvalidDataException(
                $"Graph '{path}': '{name}' has shape [{string.Join(", ", dims)}]; the parameter table says [{string.Join(", ", t.Shape)}].");
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
        for (int i = _owned.Count - 1; i >= 0; i--)
            _owned[i].Dispose();
        _owned.Clear();
        _runOptions.Dispose();
    }

    public override string ToString() => $"OnnxTrainer({_trainGraphPath}, {Device})";
}
