using System.Collections.ObjectModel;

namespace Ferret.Core.Parameters;

/// <summary>A run of consecutive parameter tensors that shares one set of random bases.</summary>
/// <param name="Index">Block id <c>b</c> (0-based), the Philox counter word of shared-randomness.md.</param>
/// <param name="Offset">First element of the block in the flat vector.</param>
/// <param name="Length">Block length <c>|b|</c>.</param>
/// <param name="FirstTensor">Index of the first tensor of the block in the layout.</param>
/// <param name="TensorCount">Number of tensors in the block.</param>
public sealed record ParameterBlock(int Index, long Offset, long Length, int FirstTensor, int TensorCount)
{
    public long End => Offset + Length;
}

/// <summary>
/// The block partition of algorithms.md: tensors in flat order are grouped into consecutive blocks;
/// a new block starts when adding the next tensor would make the current non-empty block larger than
/// <c>floor(0.9 * median(tensor sizes))</c>. The median of an even count is the mean of the two
/// middle sizes (as numpy computes it).
/// </summary>
public sealed class ParameterBlocks
{
    private ParameterBlocks(IList<ParameterBlock> blocks, long totalLength)
    {
        Blocks = new ReadOnlyCollection<ParameterBlock>(blocks);
        TotalLength = totalLength;
    }

    public IReadOnlyList<ParameterBlock> Blocks { get; }

    public int Count => Blocks.Count;

    public long TotalLength { get; }

    public ParameterBlock this[int index] => Blocks[index];

    /// <summary>The largest block size allowed to grow by another tensor: <c>floor(0.9 * median)</c>.</summary>
    public static long Threshold(IReadOnlyList<long> tensorSizes)
    {
        ArgumentNullException.ThrowIfNull(tensorSizes);
        if (tensorSizes.Count == 0)
            throw new ArgumentException("No tensor sizes to take a median of.", nameof(tensorSizes));
        var sorted = tensorSizes.ToArray();
        Array.Sort(sorted);
        int n = sorted.Length;
        double median = n % 2 == 1 ? sorted[n / 2] : (sorted[(n / 2) - 1] + (double)sorted[n / 2]) / 2.0;
        return (long)Math.Floor(0.9 * median);
    }

    /// <summary>Partitions a layout by the rule of algorithms.md.</summary>
    public static ParameterBlocks Partition(ParameterLayout layout)
    {
        ArgumentNullException.ThrowIfNull(layout);
        var sizes = layout.Tensors.Select(t => t.Length).ToArray();
        long threshold = Threshold(sizes);
        var blocks = new List<ParameterBlock>();
        int first = 0;
        long current = 0;
        for (int i = 0; i < sizes.Length; i++)
        {
            if (current > 0 && current + sizes[i] > threshold)
            {
                blocks.Add(new ParameterBlock(blocks.Count, layout.Tensors[first].Offset, current, first, i - first));
                first = i;
                current = 0;
            }
            current += sizes[i];
        }
        blocks.Add(new ParameterBlock(blocks.Count, layout.Tensors[first].Offset, current, first, sizes.Length - first));
        return new ParameterBlocks(blocks, layout.TotalLength);
    }

    /// <summary>
    /// A partition known only by its block lengths (an experiment descriptor seen by a coordinator that does
    /// not load the model): each block stands for one tensor of that length.
    /// </summary>
    public static ParameterBlocks FromLengths(IReadOnlyList<long> lengths)
    {
        ArgumentNullException.ThrowIfNull(lengths);
        var layout = new ParameterLayout(lengths.Select((l, i) => ($"block{i}", (IReadOnlyList<long>)new[] { l })));
        return FromRanges(layout, layout.Tensors.Select(t => (t.Offset, t.Length)).ToArray());
    }

    /// <summary>
    /// Rebuilds a partition from stored (offset, length) pairs (a manifest or experiment descriptor)
    /// and checks that they tile the layout exactly, on tensor boundaries.
    /// </summary>
    public static ParameterBlocks FromRanges(ParameterLayout layout, IReadOnlyList<(long Offset, long Length)> ranges)
    {
        ArgumentNullException.ThrowIfNull(layout);
        ArgumentNullException.ThrowIfNull(ranges);
        if (ranges.Count == 0)
            throw new ArgumentException("A block partition needs at least one block.", nameof(ranges));
        var tensorStart = new Dictionary<long, int>();
        for (int i = 0; i < layout.Tensors.Count; i++)
            tensorStart[layout.Tensors[i].Offset] = i;
        var blocks = new List<ParameterBlock>(ranges.Count);
        long expected = 0;
        for (int b = 0; b < ranges.Count; b++)
        {
            var (offset, length) = ranges[b];
            if (offset != expected || length <= 0)
                throw new ArgumentException($"Block {b} covers [{offset}, {offset + length}); expected it to start at {expected} with a positive length.", nameof(ranges));
            if (!tensorStart.TryGetValue(offset, out int first))
                throw new ArgumentException($"Block {b} starts at {offset}, inside a tensor.", nameof(ranges));
            long end = offset + length;
            if (end != layout.TotalLength && !tensorStart.ContainsKey(end))
                throw new ArgumentException($"Block {b} ends at {end}, inside a tensor.", nameof(ranges));
            int last = end == layout.TotalLength ? layout.Tensors.Count : tensorStart[end];
            blocks.Add(new ParameterBlock(b, offset, length, first, last - first));
            expected = end;
        }
        if (expected != layout.TotalLength)
            throw new ArgumentException($"The blocks cover {expected} of {layout.TotalLength} parameters.", nameof(ranges));
        return new ParameterBlocks(blocks, layout.TotalLength);
    }
}
