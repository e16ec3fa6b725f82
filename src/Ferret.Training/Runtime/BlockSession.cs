using Ferret.Core.Parameters;
using Ferret.Onnx.Autodiff;
using Ferret.Onnx.Graphs;
using Ferret.Onnx.Models;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace Ferret.Training.Runtime;

/// <summary>
/// One block graph of a recompute package in its own session, with its I/O binding. A backward block runs in its
/// accumulating form: each parameter gradient and its running sum bind to the same tensor of <c>G</c>, so the
/// block adds into <c>G</c> in place; the gradient it hands to the block before (<c>hidden_grad</c>) does not accumulate.
/// </summary>
internal sealed class BlockSession : IDisposable
{
    private readonly string _path;

    public BlockSession(ResidentTraining owner, string path, bool accumulating)
    {
        _path = path;
        var model = OnnxModel.Load(path);
        var graph = accumulating ? GradientAccumulation.Accumulating(model.Graph, name => name != DecoderBuilder.Hidden) : model.Graph;
        Session = owner.Session(new OnnxModel(graph, model.Opset).ToBytes(), quiet: false, path);
        try
        {
            Binding = Session.CreateIoBinding();
        }
        catch
        {
            Session.Dispose();
            throw;
        }
    }

    public InferenceSession Session { get; }

    public OrtIoBinding Binding { get; }

    public bool Takes(string input) => Session.InputMetadata.ContainsKey(input);

    /// <summary>Checks that the graph takes <paramref name="input"/> shaped as tensor <paramref name="tensor"/> of the layout (and returns its gradient when it accumulates).</summary>
    public void Check(string input, ParameterTensor tensor, bool gradient)
    {
        if (!Session.InputMetadata.TryGetValue(input, out var meta))
            throw new InvalidDataException($"Graph '{_path}' has no input '{input}' (for parameter '{tensor.Name}').");
        CheckShape(input, meta, tensor);
        if (!gradient)
            return;
        var grad = input + ReverseMode.GradientSuffix;
        if (!Session.OutputMetadata.TryGetValue(grad, out var g))
            throw new InvalidDataException($"Graph '{_path}' has no output '{grad}' (the gradient of parameter '{tensor.Name}').");
        CheckShape(grad, g, tensor);
    }

    private void CheckShape(string name, NodeMetadata meta, ParameterTensor tensor)
    {
        var dims = meta.Dimensions;
        if (meta.ElementDataType != TensorElementType.Float || !dims.Select(d => (long)d).SequenceEqual(tensor.Shape))
            throw new InvalidDataException($"Graph '{_path}': '{name}' is {meta.ElementDataType} [{string.Join(", ", dims)}]; parameter '{tensor.Name}' is float32 [{string.Join(", ", tensor.Shape)}].");
    }

    /// <summary>Binds graph input <paramref name="input"/> to tensor <paramref name="tensor"/> of <c>W</c>, and, when <paramref name="gradient"/> is given, its gradient and running sum to the same tensor of <c>G</c>.</summary>
    public void BindParameter(string input, int tensor, DeviceVector weights, DeviceVector? gradient)
    {
        Binding.BindInput(input, weights[tensor]);
        if (gradient is null)
            return;
        Binding.BindInput(input + GradientAccumulation.SumSuffix, gradient[tensor]);
        Binding.BindOutput(input + ReverseMode.GradientSuffix, gradient[tensor]);
    }

    /// <summary>Binds the batch tensors this graph takes (token ids, mask, labels); dispose after the run.</summary>
    public IDisposable BindTokens(TokenBatch batch)
    {
        long[] shape = [batch.Batch, batch.Sequence];
        var values = new OrtValues();
        foreach (var (name, data) in new[] { (DecoderBuilder.InputIds, batch.InputIds), (DecoderBuilder.AttentionMask, batch.AttentionMask), (DecoderBuilder.Labels, batch.Labels) })
        {
            if (!Takes(name))
                continue;
            var value = OrtValue.CreateTensorValueFromMemory(data, shape);
            values.Add(value);
            Binding.BindInput(name, value);
        }
        return values;
    }

    public void Run(RunOptions options) => Session.RunWithBinding(options, Binding);

    public void Dispose()
    {
        Binding?.Dispose();
        Session.Dispose();
    }

    internal sealed class OrtValues : List<OrtValue>, IDisposable
    {
        public void Dispose()
        {
            foreach (var v in this)
                v.Dispose();
            Clear();
        }
    }
}
