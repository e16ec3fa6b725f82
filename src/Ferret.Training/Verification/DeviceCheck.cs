using System.Diagnostics;
using Ferret.Onnx.Artifacts;
using Ferret.Training.Devices;
using Ferret.Training.Runtime;
using Microsoft.ML.OnnxRuntime;

namespace Ferret.Training.Verification;

/// <summary>What <see cref="DeviceCheck"/> runs: the device under test and the batch it trains on.</summary>
public sealed record DeviceCheckOptions
{
    public ExecutionDevice Device { get; init; } = ExecutionDevice.Cpu;

    /// <summary>TensorFloat-32 matrix products on the GPU (the tolerances widen with it).</summary>
    public bool Tf32 { get; init; } = true;

    /// <summary>Tokens per sequence of the check batch (two sequences, one padded, some labels ignored).</summary>
    public int Sequence { get; init; } = 64;

    /// <summary>Forward/backward runs timed per path for tokens per second.</summary>
    public int TimedSteps { get; init; } = 4;

    /// <summary>The SGD step compared after one forward/backward.</summary>
    public float LearningRate { get; init; } = 0.05f;

    public int IntraOpThreads { get; init; }

    public int Seed { get; init; } = 7;
}

/// <summary>Agreement bounds of a device check, relative errors (see <see cref="DeviceCheck"/>).</summary>
public sealed record DeviceCheckTolerances(double Loss, double Gradient, double Parameters, string Basis)
{
    /// <summary>CPU against CPU: the same kernels, different buffers and graph forms; float rounding only.</summary>
    public static DeviceCheckTolerances Cpu { get; } = new(1e-5, 1e-4, 1e-4, "cpu against cpu: float32 rounding of the same kernels");

    /// <summary>GPU float32 against the CPU: other summation orders in matrix products and reductions.</summary>
    public static DeviceCheckTolerances FullPrecision { get; } = new(1e-4, 2e-3, 2e-3, "float32 on both: summation order differs between cuBLAS/cuDNN and the CPU's MLAS");

    /// <summary>
    /// GPU with TF32 against the CPU: each product's inputs keep 10 of float32's 23 mantissa bits (relative error
    /// up to 2^-11, about 4.9e-4, per product), which a deep network's gradients amplify to a few percent.
    /// </summary>
    public static DeviceCheckTolerances Tf32 { get; } = new(5e-3, 5e-2, 5e-2, "TF32 matrix products: inputs rounded to 10 mantissa bits (2^-11 relative per product)");

    public static DeviceCheckTolerances For(ExecutionDevice device, bool tf32) => !device.IsCuda ? Cpu : tf32 ? Tf32 : FullPrecision;
}

/// <summary>One way of training on the device, against the CPU reference.</summary>
public sealed record DevicePathCheck(
    string Path, string Provider, double? Loss, double? LossError, double? GradientError, double? ParameterError,
    double? TokensPerSecond, long? PeakDeviceBytes, bool Passed, string? Note);

/// <summary>The outcome of a device check, with the library versions it loaded.</summary>
public sealed record DeviceCheckReport(
    string Device, string? DeviceName, bool Tf32, bool Passed, string? Failure, DeviceCheckTolerances Tolerances,
    IReadOnlyList<DevicePathCheck> Paths, string OnnxRuntimeVersion, string? CudaRuntimeVersion, string? CudnnVersion,
    string? DriverVersion, long PeakRssBytes, long? PeakDeviceBytes, string ArtifactFingerprint);

/// <summary>
/// <c>ferret doctor</c>: a device self-test before a client is deployed. The same batch goes through the CPU
/// provider (the reference: host buffers, or resident buffers in host memory for models past 2^31 parameters)
/// and through the device under test twice: with host buffers (parameters bound from host memory, gradients
/// copied back) and with resident buffers (<see cref="ResidentTraining"/>: parameters, gradients and the SGD
/// step in the device's memory). Each path does one forward/backward and one SGD step; the check compares
/// the loss, the gradient (<c>||g - g_ref|| / ||g_ref||</c>) and the parameters after the step
/// (<c>||w1 - w1_ref|| / ||w1_ref - w0||</c>, relative to the step itself, so a step that goes nowhere or
/// somewhere else cannot hide behind the size of the weights), and times a few more steps.
/// </summary>
public static class DeviceCheck
{
    public static DeviceCheckReport Run(ArtifactPackage package, DeviceCheckOptions options, IProgress<string>? progress = null)
    {
        ArgumentNullException.ThrowIfNull(package);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentOutOfRangeException.ThrowIfLessThan(options.Sequence, 4);
        var tolerances = DeviceCheckTolerances.For(options.Device, options.Tf32);
        var batch = GradientCheck.CheckBatch(package.Manifest.Tokenizer.VocabSize, options.Sequence, options.Seed);
        var cpu = new SessionSettings { IntraOpThreads = options.IntraOpThreads };
        var device = cpu with { Device = options.Device, Tf32 = options.Tf32 };
        var paths = new List<DevicePathCheck>();
        bool fitsHost = package.Layout.TotalLength <= Array.MaxLength;
        string? failure = null;

        using var monitor = new DeviceMemoryMonitor(options.Device);
        progress?.Report("reference: cpu");
        using var reference = Reference.Open(package, cpu, batch, options);
        paths.Add(new DevicePathCheck("reference", "cpu", reference.Loss, 0, 0, 0, reference.TokensPerSecond, null, true,
            fitsHost ? "host buffers" : "resident host buffers (the model exceeds one host array)"));

        if (options.Device.IsCuda)
        {
            progress?.Report($"host buffers: {options.Device}");
            paths.Add(fitsHost
                ? Guard("host", options.Device, () => HostPath(package, device, batch, options, reference, tolerances, monitor))
                : new DevicePathCheck("host", options.Device.ToString(), null, null, null, null, null, null, true,
                    $"skipped: {package.Layout.TotalLength:N0} parameters exceed one host array ({Array.MaxLength:N0}); resident buffers only"));
        }
        progress?.Report($"resident buffers: {options.Device}");
        paths.Add(Guard("resident", options.Device, () => ResidentPath(package, device, batch, options, reference, tolerances, monitor)));

        var failed = paths.FirstOrDefault(p => !p.Passed);
        if (failed is not null)
            failure = $"{failed.Path} buffers on {failed.Provider}: {failed.Note}";
        return new DeviceCheckReport(options.Device.ToString(), options.Device.IsCuda ? Nvml.DeviceName(options.Device.DeviceId) : null,
            options.Device.IsCuda && options.Tf32, failure is null, failure, tolerances, paths, OrtEnv.Instance().GetVersionString(),
            options.Device.IsCuda ? CudaLibraries.RuntimeVersion() : null, options.Device.IsCuda ? CudaLibraries.CudnnVersion() : null,
            Nvml.DriverVersion(), DeviceMemoryMonitor.PeakHostBytes, monitor.PeakDeviceBytes, package.Manifest.ParametersSha256);
    }

    /// <summary>A path that cannot even start (no CUDA provider, out of memory) fails with the reason instead of ending the check.</summary>
    private static DevicePathCheck Guard(string path, ExecutionDevice device, Func<DevicePathCheck> run)
    {
        try
        {
            return run();
        }
        catch (Exception e) when (e is NotSupportedException or OnnxRuntimeException or InvalidOperationException or InvalidDataException or DllNotFoundException)
        {
            return new DevicePathCheck(path, device.ToString(), null, null, null, null, null, null, false, Oneline(e.Message));
        }
    }

    private static string Oneline(string message) => message.ReplaceLineEndings(" ").Trim();

    private static DevicePathCheck HostPath(ArtifactPackage package, SessionSettings settings, TokenBatch batch, DeviceCheckOptions options,
        Reference reference, DeviceCheckTolerances tolerances, DeviceMemoryMonitor monitor)
    {
        using var trainer = new OnnxTrainer(package.Layout, package.TrainGraphPath, package.EvalGraphPath, settings with { ResidentParameters = false });
        package.LoadParameters(trainer.Parameters);
        float loss = trainer.ForwardBackward(batch);
        var errors = new Errors(reference, options.LearningRate);
        foreach (var (i, t) in package.Layout.Tensors.Index())
        {
            var g = trainer.Gradients.AsSpan(checked((int)t.Offset), checked((int)t.Length));
            errors.AddGradient(i, g);
            var w = trainer.Parameters.AsSpan(checked((int)t.Offset), checked((int)t.Length));
            // PyTorch's plain SGD step on the host: w -= lr * g.
            System.Numerics.Tensors.TensorPrimitives.MultiplyAdd(g, -options.LearningRate, w, w);
            errors.AddParameters(i, w);
        }
        monitor.Sample();
        var timer = Stopwatch.StartNew();
        for (int s = 0; s < options.TimedSteps; s++)
            trainer.ForwardBackward(batch);
        double tokensPerSecond = batch.TokenCount * (double)options.TimedSteps / timer.Elapsed.TotalSeconds;
        return errors.Result("host", settings.Device, loss, tokensPerSecond, monitor.PeakDeviceBytes, tolerances);
    }

    private static DevicePathCheck ResidentPath(ArtifactPackage package, SessionSettings settings, TokenBatch batch, DeviceCheckOptions options,
        Reference reference, DeviceCheckTolerances tolerances, DeviceMemoryMonitor monitor)
    {
        using var resident = ResidentTraining.Open(package, settings with { ResidentParameters = true }, withEvaluation: false);
        resident.Load(package);
        float loss = resident.ForwardBackward(batch);
        var errors = new Errors(reference, options.LearningRate);
        var staging = new float[package.Layout.Tensors.Max(t => t.Length)];
        foreach (var (i, t) in package.Layout.Tensors.Index())
        {
            var span = staging.AsSpan(0, checked((int)t.Length));
            resident.DownloadGradient(i, span);
            errors.AddGradient(i, span);
        }
        resident.Step(options.LearningRate);
        foreach (var (i, t) in package.Layout.Tensors.Index())
        {
            var span = staging.AsSpan(0, checked((int)t.Length));
            resident.Download(i, span);
            errors.AddParameters(i, span);
        }
        monitor.Sample();
        var timer = Stopwatch.StartNew();
        for (int s = 0; s < options.TimedSteps; s++)
        {
            resident.ForwardBackward(batch);
            resident.Step(0f);
        }
        double tokensPerSecond = batch.TokenCount * (double)options.TimedSteps / timer.Elapsed.TotalSeconds;
        return errors.Result("resident", settings.Device, loss, tokensPerSecond, monitor.PeakDeviceBytes, tolerances);
    }

    /// <summary>Streaming relative errors of a path's gradient and stepped parameters against the reference, in double.</summary>
    internal sealed class Errors(Reference reference, float learningRate)
    {
        private double _gradDiff, _gradRef, _paramDiff, _stepRef;
        private bool _finite = true;
        private float[] _w0 = [];
        private float[] _g = [];

        public void AddGradient(int tensor, ReadOnlySpan<float> gradient)
        {
            Reference(tensor, gradient.Length);
            for (int i = 0; i < gradient.Length; i++)
            {
                _finite &= float.IsFinite(gradient[i]);
                double d = (double)gradient[i] - _g[i];
                _gradDiff += d * d;
                _gradRef += (double)_g[i] * _g[i];
            }
        }

        public void AddParameters(int tensor, ReadOnlySpan<float> stepped)
        {
            Reference(tensor, stepped.Length);
            for (int i = 0; i < stepped.Length; i++)
            {
                _finite &= float.IsFinite(stepped[i]);
                float expected = _w0[i] - (learningRate * _g[i]);
                double d = (double)stepped[i] - expected;
                _paramDiff += d * d;
                double step = (double)learningRate * _g[i];
                _stepRef += step * step;
            }
        }

        private void Reference(int tensor, int length)
        {
            if (_w0.Length < length)
            {
                _w0 = new float[length];
                _g = new float[length];
            }
            reference.Read(tensor, _w0.AsSpan(0, length), _g.AsSpan(0, length));
        }

        public DevicePathCheck Result(string path, ExecutionDevice device, float loss, double tokensPerSecond, long? peak, DeviceCheckTolerances t)
        {
            double lossError = Math.Abs(loss - reference.Loss) / Math.Max(Math.Abs(reference.Loss), 1e-12);
            double gradError = Math.Sqrt(_gradDiff) / Math.Max(Math.Sqrt(_gradRef), 1e-30);
            double paramError = Math.Sqrt(_paramDiff) / Math.Max(Math.Sqrt(_stepRef), 1e-30);
            var problems = new List<string>();
            if (!_finite || !float.IsFinite(loss))
                problems.Add("non-finite values");
            if (!(lossError <= t.Loss))
                problems.Add($"loss {loss:G6} against the cpu's {reference.Loss:G6} (relative error {lossError:E2} > {t.Loss:E0})");
            if (!(gradError <= t.Gradient))
                problems.Add($"gradient relative error {gradError:E2} > {t.Gradient:E0}");
            if (!(paramError <= t.Parameters))
                problems.Add($"parameters after one SGD step: relative error {paramError:E2} > {t.Parameters:E0}");
            return new DevicePathCheck(path, device.ToString(), loss, lossError, gradError, paramError, tokensPerSecond, peak,
                problems.Count == 0, problems.Count == 0 ? null : string.Join("; ", problems));
        }
    }

    /// <summary>The CPU's loss, gradient and starting parameters, read tensor by tensor.</summary>
    internal abstract class Reference : IDisposable
    {
        public float Loss { get; protected init; }

        public double? TokensPerSecond { get; protected set; }

        public abstract void Read(int tensor, Span<float> parameters, Span<float> gradient);

        public virtual void Dispose()
        {
        }

        public static Reference Open(ArtifactPackage package, SessionSettings cpu, TokenBatch batch, DeviceCheckOptions options) =>
            package.Layout.TotalLength <= Array.MaxLength ? new HostReference(package, cpu, batch, options) : new ResidentReference(package, cpu, batch, options);

        protected static double Time(TokenBatch batch, int steps, Action step)
        {
            var timer = Stopwatch.StartNew();
            for (int s = 0; s < steps; s++)
                step();
            return batch.TokenCount * (double)steps / timer.Elapsed.TotalSeconds;
        }
    }

    private sealed class HostReference : Reference
    {
        private readonly ArtifactPackage _package;
        private readonly float[] _parameters;
        private readonly float[] _gradient;

        public HostReference(ArtifactPackage package, SessionSettings cpu, TokenBatch batch, DeviceCheckOptions options)
        {
            _package = package;
            using var trainer = new OnnxTrainer(package.Layout, package.TrainGraphPath, null, cpu with { ResidentParameters = false });
            package.LoadParameters(trainer.Parameters);
            TokensPerSecond = Time(batch, options.TimedSteps, () => trainer.ForwardBackward(batch));
            // The reference run comes last, so the host gradient holds it (the arrays outlive the sessions).
            Loss = trainer.ForwardBackward(batch);
            _parameters = trainer.Parameters;
            _gradient = trainer.Gradients;
        }

        public override void Read(int tensor, Span<float> parameters, Span<float> gradient)
        {
            var t = _package.Layout.Tensors[tensor];
            _parameters.AsSpan(checked((int)t.Offset), checked((int)t.Length)).CopyTo(parameters);
            _gradient.AsSpan(checked((int)t.Offset), checked((int)t.Length)).CopyTo(gradient);
        }
    }

    private sealed class ResidentReference : Reference
    {
        private readonly ResidentTraining _resident;

        public ResidentReference(ArtifactPackage package, SessionSettings cpu, TokenBatch batch, DeviceCheckOptions options)
        {
            _resident = ResidentTraining.Open(package, cpu with { ResidentParameters = true }, withEvaluation: false);
            try
            {
                _resident.Load(package);
                // Not timed: more runs would accumulate into the gradient this reference must keep.
                Loss = _resident.ForwardBackward(batch);
            }
            catch
            {
                _resident.Dispose();
                throw;
            }
        }

        public override void Read(int tensor, Span<float> parameters, Span<float> gradient)
        {
            _resident.Download(tensor, parameters);
            _resident.DownloadGradient(tensor, gradient);
        }

        public override void Dispose()
        {
            _resident.Dispose();
            base.Dispose();
        }
    }
}
