using System.Runtime.InteropServices;
using Ferret.Core.Parameters;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace Ferret.Training.Runtime;

/// <summary>
/// One parameter-sized float32 vector in an execution provider's memory, seen as one tensor per parameter in
/// the graph's shape. In host memory (the CPU provider) it is a single native allocation that can exceed
/// <see cref="Array.MaxLength"/> elements and is also readable as spans; in device memory each tensor is one
/// allocation from the session's allocator.
/// </summary>
internal sealed unsafe class DeviceVector : IDisposable
{
    private readonly ParameterLayout _layout;
    private readonly float* _host;
    private readonly OrtValue[] _views;

    private DeviceVector(ParameterLayout layout, float* host, OrtValue[] views)
    {
        _layout = layout;
        _host = host;
        _views = views;
    }

    /// <summary>A vector in host memory (native, 64-byte aligned, zeroed).</summary>
    public static DeviceVector Host(ParameterLayout layout)
    {
        nuint bytes = checked((nuint)layout.TotalLength * sizeof(float));
        var p = (float*)NativeMemory.AlignedAlloc(Math.Max(bytes, 64), 64);
        NativeMemory.Clear(p, bytes);
        var views = new List<OrtValue>(layout.Tensors.Count);
        try
        {
            foreach (var t in layout.Tensors)
            {
                views.Add(OrtValue.CreateTensorValueWithData(OrtMemoryInfo.DefaultInstance, TensorElementType.Float, [.. t.Shape],
                    (IntPtr)(p + t.Offset), t.Length * sizeof(float)));
            }
            return new DeviceVector(layout, p, [.. views]);
        }
        catch
        {
            foreach (var v in views)
                v.Dispose();
            NativeMemory.AlignedFree(p);
            throw;
        }
    }

    /// <summary>A vector in the memory of <paramref name="allocator"/> (a session's device allocator); contents undefined.</summary>
    public static DeviceVector Device(ParameterLayout layout, OrtAllocator allocator)
    {
        var views = new List<OrtValue>(layout.Tensors.Count);
        try
        {
            foreach (var t in layout.Tensors)
                views.Add(OrtValue.CreateAllocatedTensorValue(allocator, TensorElementType.Float, [.. t.Shape]));
            return new DeviceVector(layout, null, [.. views]);
        }
        catch
        {
            foreach (var v in views)
                v.Dispose();
            throw;
        }
    }

    public bool IsHost => _host != null;

    public int Count => _views.Length;

    /// <summary>The tensor view of parameter <paramref name="index"/>, in the graph's shape.</summary>
    public OrtValue this[int index] => _views[index];

    /// <summary>Host memory of elements [offset, offset + length); only for a host vector.</summary>
    public Span<float> Span(long offset, int length)
    {
        if (_host == null)
            throw new InvalidOperationException("This vector lives in device memory.");
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        if (offset + length > _layout.TotalLength)
            throw new ArgumentOutOfRangeException(nameof(length), $"[{offset}, {offset + length}) lies outside the {_layout.TotalLength} elements.");
        return new Span<float>(_host + offset, length);
    }

    public void Dispose()
    {
        foreach (var v in _views)
            v.Dispose();
        if (_host != null)
            NativeMemory.AlignedFree(_host);
    }
}
