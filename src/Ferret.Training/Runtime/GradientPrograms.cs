using Ferret.Core.Parameters;
using Ferret.Onnx.Autodiff;
using Ferret.Onnx.Graphs;
using Microsoft.ML.OnnxRuntime;

namespace Ferret.Training.Runtime;

/// <summary>
/// How <see cref="ResidentTraining"/> computes the training gradient at its parameters <c>W</c> and adds it to
/// its accumulated gradient <c>G</c>. Both buffers belong to the resident trainer; a program binds their
/// per-tensor views into its sessions and runs them.
/// </summary>
internal interface IGradientProgram : IDisposable
{
    /// <summary>The session whose device allocator holds <c>W</c>, <c>G</c> and the optimizer state.</summary>
    InferenceSession MainSession { get; }

    /// <summary>Binds the resident buffers (once, before the first run).</summary>
    void Bind(DeviceVector weights, DeviceVector gradient);

    /// <summary>Forward and backward on one batch at <c>W</c>, adding the gradient into <c>G</c>; returns the loss.</summary>
    float ForwardBackward(TokenBatch batch, RunOptions runOptions);
}

/// <summary>Chooses the gradient program an artifact package asks for.</summary>
internal static class GradientPrograms
{
    public static IGradientProgram Create(ParameterLayout layout, string trainGraphPath, ResidentTraining owner) =>
        new AccumulatingGraphProgram(layout, trainGraphPath, owner);
}

/// <summary>
/// The whole training graph in one session, in its accumulating form (<see cref="GradientAccumulation"/>): each
/// gradient output and its running sum are bound to the same tensor of <c>G</c>, so accumulation is in place.
/// </summary>
internal sealed class AccumulatingGraphProgram : IGradientProgram
{
    private readonly ParameterLayout _layout;
    private readonly OrtIoBinding _binding;
    private readonly float[] _loss = new float[1];
    private readonly OrtValue _lossValue;

    public AccumulatingGraphProgram(ParameterLayout layout, string trainGraphPath, ResidentTraining owner)
    {
        _layout = layout;
        var graph = OnnxModel.Load(trainGraphPath);
        MainSession = owner.Session(new OnnxModel(GradientAccumulation.Accumulating(graph.Graph), graph.Opset).ToBytes(), quiet: false);
        try
        {
            OnnxTrainer.CheckSignature(MainSession, trainGraphPath, layout, withGradients: true);
            _binding = MainSession.CreateIoBinding();
            _lossValue = OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, new Memory<float>(_loss), []);
            _binding.BindOutput("loss", _lossValue);
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    public InferenceSession MainSession { get; }

    public void Bind(DeviceVector weights, DeviceVector gradient)
    {
        for (int i = 0; i < _layout.Tensors.Count; i++)
        {
            var name = _layout.Tensors[i].Name;
            _binding.BindInput(name, weights[i]);
            _binding.BindInput(name + GradientAccumulation.SumSuffix, gradient[i]);
            _binding.BindOutput(OnnxTrainer.GradientName(name), gradient[i]);
        }
    }

    public float ForwardBackward(TokenBatch batch, RunOptions runOptions)
    {
        using (OnnxTrainer.BindBatch(MainSession, _binding, batch))
            MainSession.RunWithBinding(runOptions, _binding);
        return _loss[0];
    }

    public void Dispose()
    {
        _binding?.Dispose();
        _lossValue?.Dispose();
        MainSession.Dispose();
    }
}
