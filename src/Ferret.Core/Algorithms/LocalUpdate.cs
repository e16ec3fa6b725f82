namespace Ferret.Core.Algorithms;

/// <summary>
/// A client's local update <c>delta = w_before - w_after</c>, read range by range. A model that trains where it
/// runs (GPU memory) hands one out that reads its parameters back block by block, so the whole delta never has
/// to exist in host memory at once; Ferret projects it block by block. Valid until disposed.
/// </summary>
public interface ILocalUpdate : IDisposable
{
    /// <summary>Elements of the update (the model's parameter count).</summary>
    long Length { get; }

    /// <summary>Fills <paramref name="destination"/> with <c>delta[offset .. offset + destination.Length)</c>.</summary>
    void Read(long offset, Span<float> destination);

    /// <summary>The whole update, when it already lies in memory (no copy); false otherwise.</summary>
    bool TryGetMemory(out ReadOnlyMemory<float> memory);
}

/// <summary>An update held in one array.</summary>
public sealed class InMemoryUpdate(float[] delta) : ILocalUpdate
{
    public float[] Delta { get; } = delta ?? throw new ArgumentNullException(nameof(delta));

    public long Length => Delta.LongLength;

    public void Read(long offset, Span<float> destination) => Delta.AsSpan(checked((int)offset), destination.Length).CopyTo(destination);

    public bool TryGetMemory(out ReadOnlyMemory<float> memory)
    {
        memory = Delta;
        return true;
    }

    public void Dispose()
    {
    }
}

public static class LocalUpdates
{
    /// <summary>The whole update as one array (full-delta algorithms send it as it is).</summary>
    public static float[] ToArray(this ILocalUpdate update)
    {
        ArgumentNullException.ThrowIfNull(update);
        if (update is InMemoryUpdate m)
            return m.Delta;
        if (update.Length > Array.MaxLength)
            throw new NotSupportedException($"An update of {update.Length} values does not fit in one array; full-delta algorithms need it whole.");
        var all = new float[update.Length];
        update.Read(0, all);
        return all;
    }
}
