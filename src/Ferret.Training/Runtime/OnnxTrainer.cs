using Ferret.Core.Parameters;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace Ferret.Training.Runtime;

/// <summary>
/// Runs an exported causal-LM training graph (<c>train.onnx</c>: <c>input_ids</c>, <c>attention_mask</c>,
/// <c>labels</c> and every parameter in, <c>loss</c> and <c>&lt;name&gt;_grad</c> out) over one flat parameter
/// buffer. Parameters are bound as zero-copy views into <see cref="Parameters"/>, and ONNX Runtime writes
/// gradients straight into <see cref="Gradients"/>, so an optimizer or a projection works on two flat
/// vectors with no gathering or scattering.
/// </summary>
public sealed class OnnxTrainer : IDisposable
{
    private const string InputIds = "input_ids";
    private const string AttentionMask = "attention_mask";
    private const string Labels = "labels";
    private const string LossName = "loss";

    private readonly ParameterLayout _layout;
    private readonly InferenceSession _train;
    private readonly InferenceSession? _eval;
    private readonly OrtIoBinding _trainBinding;
    private readonly OrtIoBinding? _evalBinding;
    private readonly RunOptions _runOptions = new();
    private readonly List<OrtValue> _views = [];
    private readonly float[] _trainLoss = new float[1];
    private readonly float[] _evalLoss = new float[1];
    private readonly string _trainGraphPath;
    private bool _disposed;

    public OnnxTrainer(ParameterLayout layout, string trainGraphPath, string? evalGraphPath, SessionSettings settings)
    {
        ArgumentNullException.ThrowIfNull(layout);
        ArgumentNullException.ThrowIfNull(trainGraphPath);
        ArgumentNullException.ThrowIfNull(settings);
        if (layout.TotalLength > Array.MaxLength)
            throw new NotSupportedException($"The model has {layout.TotalLength} parameters; one flat buffer holds at most {Array.MaxLength}.");
        if (!File.Exists(trainGraphPath))
            throw new FileNotFoundException($"Training graph '{trainGraphPath}' does not exist.", trainGraphPath);
        if (evalGraphPath is not null && !File.Exists(evalGraphPath))
            throw new FileNotFoundException($"Evaluation graph '{evalGraphPath}' does not exist.", evalGraphPath);

        _layout = layout;
        _trainGraphPath = trainGraphPath;
        Device = settings.Device;
        Parameters = new float[layout.TotalLength];
        Gradients = new float[layout.TotalLength];
        try
        {
            using (var options = settings.CreateOptions())
            {
                _train = new InferenceSession(trainGraphPath, options);
            }
            CheckSignature(_train, trainGraphPath, withGradients: true);
            _trainBinding = _train.CreateIoBinding();
            BindParameters(_trainBinding);
            BindGradients(_trainBinding);
            _trainBinding.BindOutput(LossName, View(_trainLoss, 0, 1, []));
            if (settings.ResidentParameters ?? settings.Device.IsCuda)
                Resident = new ResidentTraining(layout, _train, settings, layout.Tensors.Select(t => GradientName(t.Name)).ToList());

            if (evalGraphPath is not null)
            {
                using (var options = settings.CreateOptions())
                {
                    _eval = new InferenceSession(evalGraphPath, options);
                }
                CheckSignature(_eval, evalGraphPath, withGradients: false);
                _evalBinding = _eval.CreateIoBinding();
                BindParameters(_evalBinding);
                _evalBinding.BindOutput(LossName, View(_evalLoss, 0, 1, []));
            }
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>The flat parameter vector <c>w</c> (manifest order). Edit it in place between steps.</summary>
    public float[] Parameters { get; }

    /// <summary><c>d loss / d w</c> of the last <see cref="ForwardBackward"/>, flat.</summary>
    public float[] Gradients { get; }

    public ParameterLayout Layout => _layout;

    public ExecutionDevice Device { get; }

    public bool CanEvaluate => _eval is not null;

    /// <summary>
    /// Device-resident buffers for whole first-order loops (on by default under CUDA, see
    /// <see cref="SessionSettings.ResidentParameters"/>); null when this trainer works on host buffers only.
    /// </summary>
    public ResidentTraining? Resident { get; }

    /// <summary>Forward and backward on one batch: returns the loss and overwrites <see cref="Gradients"/>.</summary>
    public float ForwardBackward(TokenBatch batch)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentNullException.ThrowIfNull(batch);
        return Run(_train, _trainBinding, batch, _trainLoss);
    }

    /// <summary>Forward only (the evaluation graph): the loss at the current parameters.</summary>
    public float Loss(TokenBatch batch)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentNullException.ThrowIfNull(batch);
        if (_eval is null || _evalBinding is null)
            throw new InvalidOperationException("This trainer was opened without an evaluation graph.");
        return Run(_eval, _evalBinding, batch, _evalLoss);
    }

    /// <summary>Ends ONNX Runtime profiling of the training session and returns the trace file, if profiling was on.</summary>
    public string EndProfiling() => _train.EndProfiling();

    private float Run(InferenceSession session, OrtIoBinding binding, TokenBatch batch, float[] loss)
    {
        using (BindBatch(session, binding, batch))
            session.RunWithBinding(_runOptions, binding);
        return loss[0];
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

    private void BindParameters(OrtIoBinding binding)
    {
        foreach (var t in _layout.Tensors)
            binding.BindInput(t.Name, View(Parameters, t.Offset, t.Length, t.Shape));
    }

    private void BindGradients(OrtIoBinding binding)
    {
        foreach (var t in _layout.Tensors)
            binding.BindOutput(GradientName(t.Name), View(Gradients, t.Offset, t.Length, t.Shape));
    }

    private OrtValue View(float[] buffer, long offset, long length, IReadOnlyList<long> shape)
    {
        var memory = new Memory<float>(buffer, checked((int)offset), checked((int)length));
        var value = OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, memory, shape.ToArray());
        _views.Add(value);
        return value;
    }

    /// <summary>The output name of a parameter's gradient in <c>train.onnx</c>.</summary>
    public static string GradientName(string parameterName) => parameterName + "_grad";

    private void CheckSignature(InferenceSession session, string path, bool withGradients)
    {
        var inputs = session.InputMetadata;
        foreach (var name in new[] { InputIds, AttentionMask })
        {
            if (!inputs.ContainsKey(name))
                throw new InvalidDataException($"Graph '{path}' has no input '{name}'.");
        }
        if (!session.OutputMetadata.ContainsKey(LossName))
            throw new InvalidDataException($"Graph '{path}' has no output '{LossName}'.");
        foreach (var t in _layout.Tensors)
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

    public void Dispose()
    {
        if (_disposed)
            return;
        _disposed = true;
        Resident?.Dispose();
        _trainBinding?.Dispose();
        _evalBinding?.Dispose();
        _train?.Dispose();
        _eval?.Dispose();
        foreach (var v in _views)
            v.Dispose();
        _views.Clear();
        _runOptions.Dispose();
    }

    public override string ToString() => $"OnnxTrainer({_trainGraphPath}, {Device})";
}
