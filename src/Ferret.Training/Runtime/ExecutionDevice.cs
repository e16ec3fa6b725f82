using System.Globalization;

namespace Ferret.Training.Runtime;

/// <summary>Where a training session runs: the CPU execution provider, or CUDA on one GPU.</summary>
public sealed record ExecutionDevice
{
    private ExecutionDevice(bool isCuda, int deviceId)
    {
        IsCuda = isCuda;
        DeviceId = deviceId;
    }

    public static ExecutionDevice Cpu { get; } = new(false, 0);

    public bool IsCuda { get; }

    /// <summary>CUDA device ordinal; 0 for the CPU.</summary>
    public int DeviceId { get; }

    public static ExecutionDevice Cuda(int deviceId = 0)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(deviceId);
        return new ExecutionDevice(true, deviceId);
    }

    /// <summary>Parses <c>cpu</c>, <c>cuda</c> or <c>cuda:N</c>.</summary>
    public static ExecutionDevice Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var t = text.Trim().ToLowerInvariant();
        if (t == "cpu")
            return Cpu;
        if (t == "cuda")
            return Cuda();
        if (t.StartsWith("cuda:", StringComparison.Ordinal)
            && int.TryParse(t.AsSpan(5), NumberStyles.None, CultureInfo.InvariantCulture, out int id))
            return Cuda(id);
        throw new ArgumentException($"Unknown device '{text}': expected cpu, cuda or cuda:N.", nameof(text));
    }

    public override string ToString() => IsCuda ? $"cuda:{DeviceId}" : "cpu";
}
