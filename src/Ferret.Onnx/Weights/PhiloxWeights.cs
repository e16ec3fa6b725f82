using Ferret.Core.Parameters;
using Ferret.Core.Randomness;
using Ferret.Onnx.Models;

namespace Ferret.Onnx.Weights;

/// <summary>
/// <see cref="WeightInitializer.Philox"/>: element <c>i</c> of tensor <c>t</c> is <c>std * N(key, t, i)</c> of the
/// counter-based <see cref="PhiloxNormal"/>, so any slice is generated independently, on every core.
/// </summary>
public sealed class PhiloxWeights : IParameterSource
{
    /// <summary>High key word: keeps initialisation streams apart from basis streams keyed by 64-bit seeds.</summary>
    private const uint KeyTag = 0x54494E49; // "INIT"

    private readonly ModelConfig _config;
    private readonly ulong _key;

    public PhiloxWeights(ModelConfig config, ParameterLayout layout, int seed, int maxDegreeOfParallelism = -1, KernelPath path = KernelPath.Auto)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(layout);
        _config = config;
        Layout = layout;
        _key = (uint)seed | ((ulong)KeyTag << 32);
        MaxDegreeOfParallelism = maxDegreeOfParallelism;
        Path = path;
    }

    public ParameterLayout Layout { get; }

    public int MaxDegreeOfParallelism { get; }

    public KernelPath Path { get; }

    public void Read(int tensor, long start, Memory<float> destination)
    {
        var t = Layout.Tensors[tensor];
        if (start < 0 || start + destination.Length > t.Length)
            throw new ArgumentOutOfRangeException(nameof(start), $"Elements [{start}, {start + destination.Length}) lie outside '{t.Name}' of {t.Length}.");
        var (constant, std) = WeightRoles.Of(t.Name, _config);
        if (constant is float c)
            destination.Span.Fill(c);
        else
            PhiloxNormal.FillParallel(_key, (uint)tensor, (float)std, destination, (ulong)start, MaxDegreeOfParallelism, Path);
    }

    public void Dispose()
    {
    }
}
