using System.Diagnostics;
using Ferret.Training.Runtime;

namespace Ferret.Training.Devices;

/// <summary>
/// Peak memory of this process while a workload runs: resident set size on the host (the kernel's high-water
/// mark) and, under CUDA, the GPU memory NVML reports for this process, sampled every few milliseconds and
/// whenever <see cref="Sample"/> is called. ONNX Runtime's arena keeps what it reserved, so the GPU figure is
/// the most it held at once, as nvidia-smi shows it.
/// </summary>
public sealed class DeviceMemoryMonitor : IDisposable
{
    private readonly ExecutionDevice _device;
    private readonly int _pid = Environment.ProcessId;
    private readonly Thread? _thread;
    private readonly ManualResetEventSlim _stop = new();
    private long _peakDevice = -1;

    public DeviceMemoryMonitor(ExecutionDevice device, TimeSpan? interval = null)
    {
        ArgumentNullException.ThrowIfNull(device);
        _device = device;
        if (!device.IsCuda || !Nvml.Available)
            return;
        var every = interval ?? TimeSpan.FromMilliseconds(5);
        _thread = new Thread(() =>
        {
            do
                Sample();
            while (!_stop.Wait(every));
        })
        { IsBackground = true, Name = "gpu-memory-monitor" };
        _thread.Start();
    }

    /// <summary>Peak GPU memory of this process in bytes; null on the CPU or without NVML.</summary>
    public long? PeakDeviceBytes
    {
        get
        {
            Sample();
            long p = Interlocked.Read(ref _peakDevice);
            return p < 0 ? null : p;
        }
    }

    /// <summary>Peak resident set size of this process (its whole life), in bytes.</summary>
    public static long PeakHostBytes
    {
        get
        {
            using var self = Process.GetCurrentProcess();
            return self.PeakWorkingSet64;
        }
    }

    /// <summary>Reads the current GPU memory of this process now.</summary>
    public void Sample()
    {
        if (!_device.IsCuda || Nvml.ProcessMemory(_device.DeviceId, _pid) is not long used)
            return;
        long seen;
        do
        {
            seen = Interlocked.Read(ref _peakDevice);
            if (used <= seen)
                return;
        }
        while (Interlocked.CompareExchange(ref _peakDevice, used, seen) != seen);
    }

    public void Dispose()
    {
        _stop.Set();
        _thread?.Join();
        _stop.Dispose();
    }
}
