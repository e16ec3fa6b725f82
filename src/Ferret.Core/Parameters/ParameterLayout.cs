using System.Collections.ObjectModel;

namespace Ferret.Core.Parameters;

/// <summary>One named parameter tensor inside the flat parameter vector.</summary>
/// <param name="Name">Hugging Face name, e.g. <c>model.layers.0.self_attn.q_proj.weight</c>.</param>
/// <param name="Shape">Row-major shape.</param>
/// <param name="Offset">First element in the flat vector.</param>
/// <param name="Length">Number of elements (product of the shape).</param>
public sealed record ParameterTensor(string Name, IReadOnlyList<long> Shape, long Offset, long Length)
{
    /// <summary>Exclusive end of the tensor in the flat vector.</summary>
    public long End => Offset + Length;
}

/// <summary>
/// The flat parameter vector <c>w</c> of algorithms.md: every trainable tensor, in manifest order,
/// row-major, fp32, laid end to end.
/// </summary>
public sealed class ParameterLayout
{
    private readonly Dictionary<string, int> _byName;

    public ParameterLayout(IEnumerable<(string Name, IReadOnlyList<long> Shape)> tensors)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        var list = new List<ParameterTensor>();
        _byName = new Dictionary<string, int>(StringComparer.Ordinal);
        long offset = 0;
        foreach (var (name, shape) in tensors)
        {
            if (string.IsNullOrEmpty(name))
                throw new ArgumentException("A parameter tensor has an empty name.", nameof(tensors));
            long length = 1;
            foreach (var d in shape)
            {
                if (d <= 0)
                    throw new ArgumentException($"Parameter '{name}' has a non-positive dimension {d} in shape [{string.Join(", ", shape)}].", nameof(tensors));
                length = checked(length * d);
            }
            if (!_byName.TryAdd(name, list.Count))
                throw new ArgumentException($"Parameter '{name}' appears twice.", nameof(tensors));
            list.Add(new ParameterTensor(name, shape.ToArray(), offset, length));
            offset = checked(offset + length);
        }
        if (list.Count == 0)
            throw new ArgumentException("A parameter layout needs at least one tensor.", nameof(tensors));
        Tensors = new ReadOnlyCollection<ParameterTensor>(list);
        TotalLength = offset;
    }

    /// <summary>The tensors in flat order.</summary>
    public IReadOnlyList<ParameterTensor> Tensors { get; }

    /// <summary><c>d = |w|</c>.</summary>
    public long TotalLength { get; }

    public ParameterTensor this[string name] =>
        _byName.TryGetValue(name, out var i) ? Tensors[i] : throw new KeyNotFoundException($"No parameter named '{name}' in the layout.");

    public bool Contains(string name) => _byName.ContainsKey(name);

    /// <summary>The view of one tensor inside a flat buffer laid out by this layout.</summary>
    public Span<float> Slice(Span<float> flat, string name)
    {
        var t = this[name];
        EnsureLength(flat.Length);
        return flat.Slice(checked((int)t.Offset), checked((int)t.Length));
    }

    /// <summary>The view of one tensor inside a flat buffer laid out by this layout.</summary>
    public ReadOnlySpan<float> Slice(ReadOnlySpan<float> flat, string name)
    {
        var t = this[name];
        EnsureLength(flat.Length);
        return flat.Slice(checked((int)t.Offset), checked((int)t.Length));
    }

    private void EnsureLength(long length)
    {
        if (length != TotalLength)
            throw new ArgumentException($"Flat buffer has {length} elements; the layout needs {TotalLength}.");
    }
}
