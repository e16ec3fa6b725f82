using Ferret.Core.Algorithms;
using Ferret.Core.Parameters;

namespace Ferret.Training.Runtime;

/// <summary>
/// <c>delta = w_before - w_after</c> of a resident loop, computed range by range from the host's starting
/// parameters and the device's trained ones, tensor by tensor: no parameter-sized host buffer beyond the model.
/// </summary>
public sealed class ResidentUpdate(ResidentTraining resident, HostParameters start, ParameterLayout layout) : ILocalUpdate
{
    private float[] _staging = [];

    public long Length => layout.TotalLength;

    public void Read(long offset, Span<float> destination)
    {
        long end = offset + destination.Length;
        if (offset < 0 || end > layout.TotalLength)
            throw new ArgumentOutOfRangeException(nameof(offset), $"[{offset}, {end}) lies outside the update's {layout.TotalLength} elements.");
        for (int i = 0; i < layout.Tensors.Count; i++)
        {
            var t = layout.Tensors[i];
            long from = Math.Max(offset, t.Offset), to = Math.Min(end, t.Offset + t.Length);
            if (from >= to)
                continue;
            var target = destination.Slice((int)(from - offset), (int)(to - from));
            if (from == t.Offset && to == t.Offset + t.Length)
            {
                resident.Download(i, target);
            }
            else
            {
                if (_staging.Length < t.Length)
                    _staging = new float[t.Length];
                var whole = _staging.AsSpan(0, checked((int)t.Length));
                resident.Download(i, whole);
                whole.Slice((int)(from - t.Offset), target.Length).CopyTo(target);
            }
            // delta = w_before - w_after
            System.Numerics.Tensors.TensorPrimitives.Subtract(start.Slice(from, target.Length), target, target);
        }
    }

    public bool TryGetMemory(out ReadOnlyMemory<float> memory)
    {
        memory = default;
        return false;
    }

    public void Dispose() => _staging = [];
}
