using Microsoft.ML.OnnxRuntime;

namespace Ferret.Training.Runtime;

/// <summary>How ONNX Runtime sessions are created: device, threads, graph optimisation, profiling.</summary>
public sealed record SessionSettings
{
    public ExecutionDevice Device { get; init; } = ExecutionDevice.Cpu;

    /// <summary>Intra-op threads; 0 lets ONNX Runtime use one per physical core.</summary>
    public int IntraOpThreads { get; init; }

    public GraphOptimizationLevel OptimizationLevel { get; init; } = GraphOptimizationLevel.ORT_ENABLE_ALL;

    /// <summary>
    /// Keep parameters, gradients and optimizer work in the execution provider's memory for first-order local
    /// loops (<see cref="ResidentTraining"/>). Null: on under CUDA, off on the CPU (where host buffers are
    /// already zero-copy).
    /// </summary>
    public bool? ResidentParameters { get; init; }

    /// <summary>When set, ONNX Runtime writes a chrome-trace profile with this path prefix.</summary>
    public string? ProfilePrefix { get; init; }

    /// <summary>Parses <c>none|basic|extended|all</c>.</summary>
    public static GraphOptimizationLevel ParseOptimizationLevel(string text) => text?.Trim().ToLowerInvariant() switch
    {
        "none" or "disable" => GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic" => GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended" => GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all" => GraphOptimizationLevel.ORT_ENABLE_ALL,
        _ => throw new ArgumentException($"Unknown graph optimisation level '{text}': expected none, basic, extended or all."),
    };

    /// <summary>Creates session options; fails with installation advice when CUDA is asked for but missing.</summary>
    public SessionOptions CreateOptions()
    {
        var options = new SessionOptions
        {
            GraphOptimizationLevel = OptimizationLevel,
            ExecutionMode = ExecutionMode.ORT_SEQUENTIAL,
            InterOpNumThreads = 1,
        };
        try
        {
            if (IntraOpThreads > 0)
                options.IntraOpNumThreads = IntraOpThreads;
            if (ProfilePrefix is not null)
            {
                options.EnableProfiling = true;
                options.ProfileOutputPathPrefix = ProfilePrefix;
            }
            if (Device.IsCuda)
                AppendCuda(options, Device.DeviceId);
            return options;
        }
        catch
        {
            options.Dispose();
            throw;
        }
    }

    private static void AppendCuda(SessionOptions options, int deviceId)
    {
        try
        {
            options.AppendExecutionProvider_CUDA(deviceId);
        }
        catch (Exception e) when (e is OnnxRuntimeException or EntryPointNotFoundException or DllNotFoundException)
        {
            throw new NotSupportedException(
                $"The CUDA execution provider is not available ({e.Message.Trim()}). Build with the GPU runtime " +
                "(dotnet build -p:FerretGpu=true, which uses the Microsoft.ML.OnnxRuntime.Gpu package) and install " +
                "CUDA 12 and cuDNN 9 on this machine, or run with --device cpu.", e);
        }
    }
}
