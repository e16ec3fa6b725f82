using Ferret.Core.Randomness;

namespace Ferret.Core.Projection;

/// <summary>How projection and reconstruction run: threads and instruction set. Neither changes a bit of the model.</summary>
public sealed record KernelOptions
{
    public static KernelOptions Default { get; } = new();

    /// <summary>Worker threads; 0 means one per core.</summary>
    public int Threads { get; init; }

    public KernelPath Path { get; init; } = KernelPath.Auto;

    /// <summary>Elements per parallel work item (a multiple of 64).</summary>
    public int WorkItemLength { get; init; } = 1 << 16;

    internal ParallelOptions Parallel => new() { MaxDegreeOfParallelism = Threads > 0 ? Threads : Environment.ProcessorCount };

    internal void Validate()
    {
        ArgumentOutOfRangeException.ThrowIfNegative(Threads);
        if (WorkItemLength <= 0 || WorkItemLength % 64 != 0)
            throw new ArgumentOutOfRangeException(nameof(WorkItemLength), WorkItemLength, "Work items must be a positive multiple of 64 elements.");
    }

    /// <summary>Splits every block into work items of at most <see cref="WorkItemLength"/> elements.</summary>
    internal List<(int Block, long Start, int Length)> WorkItems(Parameters.ParameterBlocks blocks, Func<int, bool>? include = null)
    {
        var items = new List<(int, long, int)>();
        foreach (var b in blocks.Blocks)
        {
            if (include is not null && !include(b.Index))
                continue;
            for (long s = 0; s < b.Length; s += WorkItemLength)
                items.Add((b.Index, s, (int)Math.Min(WorkItemLength, b.Length - s)));
        }
        return items;
    }
}
