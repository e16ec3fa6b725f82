using System.Runtime.InteropServices;
using Ferret.Onnx.Artifacts;
using Ferret.Onnx.Checkpoints;

namespace Ferret.Training.Runtime;

/// <summary>
/// A model's flat parameters in host memory: an array where the model fits one, native memory past
/// <see cref="Array.MaxLength"/> elements (a 7B model's 6.7 G floats). Read and written range by range.
/// </summary>
public sealed unsafe class HostParameters : IDisposable
{
    private readonly float[]? _array;
    private float* _native;

    private HostParameters(float[]? array, float* native, long length)
    {
        _array = array;
        _native = native;
        Length = length;
    }

    public long Length { get; }

    /// <summary>The flat vector as one array, when it is one.</summary>
    public float[]? Array => _array;

    public static HostParameters Wrap(float[] parameters) => new(parameters ?? throw new ArgumentNullException(nameof(parameters)), null, parameters.LongLength);

    /// <summary>Room for <paramref name="length"/> parameters (an array when it fits one, else native memory).</summary>
    public static HostParameters Allocate(long length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        if (length <= System.Array.MaxLength)
            return new HostParameters(new float[length], null, length);
        return new HostParameters(null, (float*)NativeMemory.AlignedAlloc(checked((nuint)length * sizeof(float)), 64), length);
    }

    /// <summary>The package's parameters, read tensor by tensor straight into host memory.</summary>
    public static HostParameters Load(ArtifactPackage package)
    {
        ArgumentNullException.ThrowIfNull(package);
        var host = Allocate(package.Layout.TotalLength);
        try
        {
            using var reader = SafeTensorsReader.Open(package.ParametersPath);
            foreach (var t in package.Layout.Tensors)
                reader.ReadFloat32(t.Name, host.Slice(t.Offset, checked((int)t.Length)));
            return host;
        }
        catch
        {
            host.Dispose();
            throw;
        }
    }

    public Span<float> Slice(long offset, int length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        if (offset + length > Length)
            throw new ArgumentOutOfRangeException(nameof(length), $"[{offset}, {offset + length}) lies outside the {Length} parameters.");
        if (_array is not null)
            return _array.AsSpan(checked((int)offset), length);
        ObjectDisposedException.ThrowIf(_native == null, this);
        return new Span<float>(_native + offset, length);
    }

    public void Dispose()
    {
        if (_native != null)
            NativeMemory.AlignedFree(_native);
        _native = null;
    }
}
