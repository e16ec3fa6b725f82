namespace Ferret.Core.Projection;

/// <summary>
/// Sparse (seed index, block, value) triples as parallel arrays, ordered by block then ascending seed index:
/// a client's projections <c>gamma</c>, or the coordinator's coefficients <c>c</c>.
/// </summary>
public sealed class SeedCoordinates
{
    public SeedCoordinates(int[] seedIndices, int[] blocks, float[] values)
    {
        ArgumentNullException.ThrowIfNull(seedIndices);
        ArgumentNullException.ThrowIfNull(blocks);
        ArgumentNullException.ThrowIfNull(values);
        if (seedIndices.Length != blocks.Length || blocks.Length != values.Length)
            throw new ArgumentException($"Coordinate arrays differ in length: {seedIndices.Length} seed indices, {blocks.Length} blocks, {values.Length} values.");
        SeedIndices = seedIndices;
        Blocks = blocks;
        Values = values;
    }

    public int[] SeedIndices { get; }

    public int[] Blocks { get; }

    public float[] Values { get; }

    public int Count => Values.Length;

    /// <summary>Sorts by (block, seed index), the order in which every participant applies coefficients.</summary>
    public SeedCoordinates Sorted()
    {
        var order = Enumerable.Range(0, Count).OrderBy(i => Blocks[i]).ThenBy(i => SeedIndices[i]).ToArray();
        return new SeedCoordinates(order.Select(i => SeedIndices[i]).ToArray(), order.Select(i => Blocks[i]).ToArray(), order.Select(i => Values[i]).ToArray());
    }

    /// <summary>The index ranges of each block's entries, for data sorted by block.</summary>
    internal Dictionary<int, (int Start, int Count)> BlockRanges()
    {
        var ranges = new Dictionary<int, (int, int)>();
        int i = 0;
        while (i < Count)
        {
            int b = Blocks[i];
            int j = i;
            while (j < Count && Blocks[j] == b)
                j++;
            if (!ranges.TryAdd(b, (i, j - i)))
                throw new ArgumentException($"Block {b} appears in two separate runs: coordinates must be sorted by block.");
            i = j;
        }
        return ranges;
    }
}
