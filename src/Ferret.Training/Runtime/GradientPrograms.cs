using Ferret.Core.Parameters;
using Ferret.Onnx.Artifacts;
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

    /// <summary>Ends ONNX Runtime profiling of the program's sessions; returns the trace file ("" when profiling was off).</summary>
    string EndProfiling();
}

/// <summary>Chooses the gradient program an artifact package asks for.</summary>
internal static class GradientPrograms
{
    /// <summary>
    /// The layered program (<see cref="LayeredProgram"/>) when the training graph belongs to a package whose manifest
    /// lists recompute graphs; the whole accumulating graph otherwise.
    /// </summary>
    public static IGradientProgram Create(ParameterLayout layout, string trainGraphPath, ResidentTraining owner) =>
        RecomputePackage(layout, trainGraphPath) is { } package
            ? new LayeredProgram(package, owner)
            : new AccumulatingGraphProgram(layout, trainGraphPath, owner);

    /// <summary>The package <paramref name="trainGraphPath"/> is the training graph of, when it was exported with recompute.</summary>
    private static ArtifactPackage? RecomputePackage(ParameterLayout layout, string trainGraphPath)
    {
        var path = Path.GetFullPath(trainGraphPath);
        var directory = Path.GetDirectoryName(path);
        if (directory is null || !File.Exists(Path.Combine(directory, ArtifactManifest.FileName)))
            return null;
        var package = ArtifactPackage.Open(directory);
        if (package.Manifest.Recompute is null || package.TrainGraphPath != path)
            return null;
        if (!package.Layout.Tensors.Select(t => (t.Name, t.Length)).SequenceEqual(layout.Tensors.Select(t => (t.Name, t.Length))))
            throw new InvalidDataException($"The parameter layout given for '{trainGraphPath}' is not the one its package '{directory}' lists.");
        return package;
    }
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
        MainSession = owner.Session(new OnnxModel(GradientAccumulation.Accumulating(graph.Graph), graph.Opset).ToBytes(), quiet: false, trainGraphPath);
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

    public string EndProfiling() => MainSession.EndProfiling();

    public void Dispose()
    {
        _binding?.Dispose();
        _lossValue?.Dispose();
        MainSession.Dispose();
    }
}
