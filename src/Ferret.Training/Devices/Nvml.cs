using System.Runtime.InteropServices;
using System.Text;

namespace Ferret.Training.Devices;

/// <summary>
/// NVIDIA's management library (<c>libnvidia-ml.so.1</c>, installed with the driver), read-only: the GPU's name,
/// the driver version, and how much of the GPU's memory this process and the whole device use — the figures
/// <c>nvidia-smi</c> shows. Absent (no NVIDIA driver), every query answers null.
/// </summary>
public static partial class Nvml
{
    private const string Library = "libnvidia-ml.so.1";
    private static readonly Lazy<bool> Initialised = new(Init);

    /// <summary>Whether the library loaded and initialised.</summary>
    public static bool Available => Initialised.Value;

    public static string? DriverVersion()
    {
        if (!Available)
            return null;
        var buffer = new byte[96];
        return nvmlSystemGetDriverVersion(buffer, (uint)buffer.Length) == 0 ? Text(buffer) : null;
    }

    public static string? DeviceName(int device)
    {
        if (!TryHandle(device, out var h))
            return null;
        var buffer = new byte[96];
        return nvmlDeviceGetName(h, buffer, (uint)buffer.Length) == 0 ? Text(buffer) : null;
    }

    /// <summary>Total and used memory of the whole device, in bytes.</summary>
    public static (long Total, long Used)? DeviceMemory(int device)
    {
        if (!TryHandle(device, out var h) || nvmlDeviceGetMemoryInfo(h, out var info) != 0)
            return null;
        return ((long)info.Total, (long)info.Used);
    }

    /// <summary>GPU memory used by process <paramref name="pid"/> on the device, in bytes (what nvidia-smi lists per process).</summary>
    public static long? ProcessMemory(int device, int pid)
    {
        if (!TryHandle(device, out var h))
            return null;
        var processes = new ProcessInfo[64];
        uint count = (uint)processes.Length;
        if (nvmlDeviceGetComputeRunningProcesses_v3(h, ref count, processes) != 0)
            return null;
        for (int i = 0; i < Math.Min(count, (uint)processes.Length); i++)
        {
            if (processes[i].Pid == (uint)pid)
                return processes[i].UsedGpuMemory == ulong.MaxValue ? null : (long)processes[i].UsedGpuMemory;
        }
        return 0;
    }

    private static bool TryHandle(int device, out IntPtr handle)
    {
        handle = IntPtr.Zero;
        return Available && nvmlDeviceGetHandleByIndex_v2((uint)device, out handle) == 0;
    }

    private static string Text(byte[] buffer)
    {
        int end = Array.IndexOf(buffer, (byte)0);
        return Encoding.ASCII.GetString(buffer, 0, end < 0 ? buffer.Length : end);
    }

    private static bool Init()
    {
        try
        {
            return nvmlInit_v2() == 0;
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException or BadImageFormatException)
        {
            return false;
        }
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct MemoryInfo
    {
        public ulong Total;
        public ulong Free;
        public ulong Used;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct ProcessInfo
    {
        public uint Pid;
        public ulong UsedGpuMemory;
        public uint GpuInstanceId;
        public uint ComputeInstanceId;
    }

    [LibraryImport(Library)]
    private static partial int nvmlInit_v2();

    [LibraryImport(Library)]
    private static partial int nvmlSystemGetDriverVersion([Out] byte[] version, uint length);

    [LibraryImport(Library)]
    private static partial int nvmlDeviceGetHandleByIndex_v2(uint index, out IntPtr device);

    [LibraryImport(Library)]
    private static partial int nvmlDeviceGetName(IntPtr device, [Out] byte[] name, uint length);

    [LibraryImport(Library)]
    private static partial int nvmlDeviceGetMemoryInfo(IntPtr device, out MemoryInfo memory);

    [LibraryImport(Library)]
    private static partial int nvmlDeviceGetComputeRunningProcesses_v3(IntPtr device, ref uint count, [In, Out] ProcessInfo[] infos);
}
