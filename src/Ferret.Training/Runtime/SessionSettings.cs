using System.Globalization;
using Microsoft.ML.OnnxRuntime;

namespace Ferret.Training.Runtime;

/// <summary>How ONNX Runtime sessions are created: device, threads, graph optimisation, memory, profiling.</summary>
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

    /// <summary>
    /// TensorFloat-32 matrix products on GPUs that have them (CUDA's <c>use_tf32</c>): faster, with float32
    /// products rounded to a 10-bit mantissa before accumulation. Ignored on the CPU.
    /// </summary>
    public bool Tf32 { get; init; } = true;

    /// <summary>
    /// Upper bound, in bytes, of what ONNX Runtime's CUDA arena may take (<c>gpu_mem_limit</c>); 0 leaves it
    /// unbounded. The arena grows by what is asked for rather than in powers of two, so it holds no more than
    /// the peak the graphs need.
    /// </summary>
    public long GpuMemoryLimit { get; init; }

    /// <summary>
    /// ONNX Runtime's CPU memory arena. Off by default: the arena keeps what it once reserved, in chunks that grow in
    /// powers of two, while plain allocations of large tensors go back to the system as soon as they are freed, so
    /// the process holds only what is alive.
    /// </summary>
    public bool CpuArena { get; init; }

    /// <summary>When set, ONNX Runtime writes a chrome-trace profile with this path prefix.</summary>
    public string? ProfilePrefix { get; init; }

    /// <summary>
    /// Tests only: bind host parameters the way a device provider does (a copy taken when bound), on the CPU,
    /// so the rule that every run sees the current host parameters can be checked without a GPU.
    /// </summary>
    internal bool EmulateDeviceInputs { get; init; }

    /// <summary>
    /// Whether the provider reads bound host memory in place (the CPU) or copies it when it is bound (CUDA):
    /// a copying provider must be bound again after every edit of the host buffer.
    /// </summary>
    internal bool ReadsHostInPlace => !Device.IsCuda && !EmulateDeviceInputs;

    /// <summary>Parses <c>none|basic|extended|all</c>.</summary>
    public static GraphOptimizationLevel ParseOptimizationLevel(string text) => text?.Trim().ToLowerInvariant() switch
    {
        "none" or "disable" => GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic" => GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended" => GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all" => GraphOptimizationLevel.ORT_ENABLE_ALL,
        _ => throw new ArgumentException($"Unknown graph optimisation level '{text}': expected none, basic, extended or all."),
    };

    /// <summary>
    /// Opens a session on this device. A graph that needs a kernel the device lacks (bf16 matrix products, from
    /// <c>ferret export --precision bf16-mixed</c>, on a CPU) fails with one line naming the graph and the way out.
    /// </summary>
    public static InferenceSession Open(Func<InferenceSession> open, string graph)
    {
        ArgumentNullException.ThrowIfNull(open);
        try
        {
            return open();
        }
        catch (OnnxRuntimeException e) when (e.Message.Contains("Could not find an implementation for", StringComparison.Ordinal))
        {
            string detail = e.Message.ReplaceLineEndings(" ");
            throw new NotSupportedException(
                $"'{graph}' needs an operator this device has no kernel for ({(detail.Length > 200 ? detail[..200] + "..." : detail)}); "
                + "a package exported with --precision bf16-mixed trains on a CUDA GPU only: export it with --precision fp32 for this device.", e);
        }
    }

    /// <summary>Creates session options; fails with installation advice when CUDA is asked for but missing.</summary>
    public SessionOptions CreateOptions()
    {
        var options = new SessionOptions
        {
            GraphOptimizationLevel = OptimizationLevel,
            ExecutionMode = ExecutionMode.ORT_SEQUENTIAL,
            InterOpNumThreads = 1,
            EnableCpuMemArena = CpuArena,
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
                AppendCuda(options);
            return options;
        }
        catch
        {
            options.Dispose();
            throw;
        }
    }

    /// <summary>The CUDA execution provider's settings, as the session gets them.</summary>
    public IReadOnlyDictionary<string, string> CudaProviderOptions()
    {
        var o = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["device_id"] = Device.DeviceId.ToString(CultureInfo.InvariantCulture),
            // The default (kNextPowerOfTwo) can leave the arena up to twice the peak the graphs need.
            ["arena_extend_strategy"] = "kSameAsRequested",
            ["use_tf32"] = Tf32 ? "1" : "0",
        };
        if (GpuMemoryLimit > 0)
            o["gpu_mem_limit"] = GpuMemoryLimit.ToString(CultureInfo.InvariantCulture);
        return o;
    }

    private void AppendCuda(SessionOptions options)
    {
        try
        {
            using var cuda = new OrtCUDAProviderOptions();
            cuda.UpdateOptions(new Dictionary<string, string>(CudaProviderOptions()));
            options.AppendExecutionProvider_CUDA(cuda);
        }
        catch (Exception e) when (e is OnnxRuntimeException or EntryPointNotFoundException or DllNotFoundException)
        {
            throw new NotSupportedException(
                $"The CUDA execution provider is not available ({e.Message.Trim()}). Build with the GPU runtime " +
                "(dotnet publish -p:FerretGpu=true, which uses the Microsoft.ML.OnnxRuntime.Gpu package) and put CUDA 13 " +
                "(libcudart.so.13, libcublas.so.13) and cuDNN 9 (libcudnn.so.9) on LD_LIBRARY_PATH (see the README's " +
                "\"On a GPU machine\"), or run with --device cpu.", e);
        }
    }
}
