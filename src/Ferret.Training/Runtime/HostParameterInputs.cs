using Ferret.Core.Parameters;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace Ferret.Training.Runtime;

/// <summary>
/// A flat host parameter vector bound as the parameter inputs of a session. The CPU provider reads the bound
/// views in place, so later edits of the host buffer are seen without rebinding. A device provider (CUDA)
/// copies a host input when it is <em>bound</em>, not when the session runs: a binding made once is stale
/// after the first edit. The rule, for every caller: bind again (<see cref="Bind"/>) before each run unless the
/// provider reads host memory in place (<see cref="ReadsInPlace"/>) or the parameters did not change since.
/// </summary>
internal sealed class HostParameterInputs : IDisposable
{
    private readonly ParameterLayout _layout;
    private readonly float[] _host;
    private readonly bool _emulateCopies;
    private readonly OrtValue[] _views;
    private readonly List<OrtValue> _copies = [];

    public HostParameterInputs(ParameterLayout layout, float[] host, SessionSettings settings)
    {
        _layout = layout;
        _host = host;
        ReadsInPlace = settings.ReadsHostInPlace;
        _emulateCopies = settings.EmulateDeviceInputs && !settings.Device.IsCuda;
        _views = layout.Tensors.Select(t => OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance,
            new Memory<float>(host, checked((int)t.Offset), checked((int)t.Length)), [.. t.Shape])).ToArray();
    }

    /// <summary>True where a binding made once keeps seeing the host buffer (the CPU provider).</summary>
    public bool ReadsInPlace { get; }

    /// <summary>Binds the parameters as they are now; a device provider takes its copy here.</summary>
    public void Bind(OrtIoBinding binding)
    {
        if (!_emulateCopies)
        {
            for (int i = 0; i < _views.Length; i++)
                binding.BindInput(_layout.Tensors[i].Name, _views[i]);
            return;
        }
        // A device's semantics on the CPU: the session sees a snapshot taken at bind time.
        DisposeCopies();
        for (int i = 0; i < _views.Length; i++)
        {
            var t = _layout.Tensors[i];
            var copy = OrtValue.CreateAllocatedTensorValue(OrtAllocator.DefaultInstance, TensorElementType.Float, [.. t.Shape]);
            _host.AsSpan(checked((int)t.Offset), checked((int)t.Length)).CopyTo(copy.GetTensorMutableDataAsSpan<float>());
            _copies.Add(copy);
            binding.BindInput(t.Name, copy);
        }
    }

    private void DisposeCopies()
    {
        foreach (var c in _copies)
            c.Dispose();
        _copies.Clear();
    }

    public void Dispose()
    {
        DisposeCopies();
        foreach (var v in _views)
            v.Dispose();
    }
}
