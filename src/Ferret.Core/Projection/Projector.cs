using Ferret.Core.Parameters;
using Ferret.Core.Randomness;

namespace Ferret.Core.Projection;

/// <summary>
/// Ferret's client-side compression: projects the local update <c>delta = w_before - w_after</c> onto
/// seeded random bases, block by block, with norm-adaptive seed counts (algorithms.md). The bases are
/// generated and consumed in registers (<see cref="BasisKernels.Dot"/>); work runs in parallel over
/// (block, tile) items and is reduced in a fixed order, so the result does not depend on the thread count.
/// </summary>
public static class Projector
{
    /// <summary><c>n_b = clamp(floor(||delta_b|| / max_b' ||delta_b'|| * K), 2, K)</c>; all-zero norms give 2 each.</summary>
    public static int[] SeedCounts(ReadOnlySpan<double> blockNorms, int candidateCount)
    {
        if (candidateCount < 2)
            throw new ArgumentOutOfRangeException(nameof(candidateCount), candidateCount, "Ferret needs at least 2 candidate seeds.");
        double max = 0;
        foreach (var n in blockNorms)
        {
            if (!double.IsFinite(n) || n < 0)
                throw new ArgumentException($"Block norm {n} is not a finite non-negative number.", nameof(blockNorms));
            max = Math.Max(max, n);
        }
        var counts = new int[blockNorms.Length];
        for (int b = 0; b < counts.Length; b++)
        {
            double ratio = max > 0 ? blockNorms[b] / max : 0;
            counts[b] = (int)Math.Clamp(Math.Floor(ratio * candidateCount), 2, candidateCount);
        }
        return counts;
    }

    /// <summary>L2 norm of every block of a flat vector; fails, naming the block, on a non-finite value.</summary>
    public static double[] BlockNorms(ReadOnlyMemory<float> delta, ParameterBlocks blocks, KernelOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(blocks);
        options ??= KernelOptions.Default;
        options.Validate();
        if (delta.Length != blocks.TotalLength)
            throw new ArgumentException($"The update has {delta.Length} elements; the blocks cover {blocks.TotalLength}.", nameof(delta));
        var items = options.WorkItems(blocks);
        var partial = new double[items.Count];
        Parallel.For(0, items.Count, options.Parallel, i =>
        {
            var (b, start, length) = items[i];
            var span = delta.Span.Slice((int)(blocks[b].Offset + start), length);
            double s = System.Numerics.Tensors.TensorPrimitives.SumOfSquares(span);
            if (!double.IsFinite(s))
                s = Exact(span);
            partial[i] = s;
        });
        var norms = new double[blocks.Count];
        for (int i = 0; i < items.Count; i++)
            norms[items[i].Block] += partial[i];
        for (int b = 0; b < norms.Length; b++)
        {
            if (!double.IsFinite(norms[b]))
                throw new InvalidDataException($"The local update has non-finite values in block {b} (elements {blocks[b].Offset}..{blocks[b].End - 1}); it is not sent.");
            norms[b] = Math.Sqrt(norms[b]);
        }
        return norms;
    }

    // Float sums of squares overflow for huge but finite values; redo such a tile in double.
    private static double Exact(ReadOnlySpan<float> span)
    {
        double s = 0;
        foreach (var v in span)
            s += (double)v * v;
        return s;
    }

    /// <summary>
    /// Projects <paramref name="delta"/>: picks <c>n_b</c> seed indices per block without replacement with
    /// the client's own <paramref name="random"/>, and returns <c>gamma_{k,b} = (|b| / n_b) &lt;delta_b, v_{k,b}&gt;</c>.
    /// </summary>
    public static SeedCoordinates Project(
        ReadOnlyMemory<float> delta, ParameterBlocks blocks, IReadOnlyList<ulong> candidateSeeds,
        BasisDistribution distribution, Random random, KernelOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(blocks);
        ArgumentNullException.ThrowIfNull(candidateSeeds);
        ArgumentNullException.ThrowIfNull(random);
        options ??= KernelOptions.Default;
        var norms = BlockNorms(delta, blocks, options);
        var counts = SeedCounts(norms, candidateSeeds.Count);

        var chosen = new int[blocks.Count][];
        var seeds = new ulong[blocks.Count][];
        for (int b = 0; b < blocks.Count; b++)
        {
            chosen[b] = SampleWithoutReplacement(candidateSeeds.Count, counts[b], random);
            seeds[b] = chosen[b].Select(k => candidateSeeds[k]).ToArray();
        }

        var items = options.WorkItems(blocks);
        var partial = new double[items.Count][];
        var path = options.Path;
        Parallel.For(0, items.Count, options.Parallel, i =>
        {
            var (b, start, length) = items[i];
            var block = blocks[b];
            var dots = new double[seeds[b].Length];
            var data = delta.Span.Slice((int)(block.Offset + start), length);
            BasisKernels.Dot(seeds[b], (uint)b, SharedRandomness.Scale(block.Length), distribution, data, (ulong)start, dots, path);
            partial[i] = dots;
        });

        int total = counts.Sum();
        var seedIndex = new int[total];
        var blockIndex = new int[total];
        var gamma = new float[total];
        var sums = new double[blocks.Count][];
        for (int b = 0; b < blocks.Count; b++)
            sums[b] = new double[counts[b]];
        for (int i = 0; i < items.Count; i++)
        {
            var s = sums[items[i].Block];
            for (int j = 0; j < s.Length; j++)
                s[j] += partial[i][j];
        }
        int at = 0;
        for (int b = 0; b < blocks.Count; b++)
        {
            double factor = (double)blocks[b].Length / counts[b];
            for (int j = 0; j < counts[b]; j++, at++)
            {
                seedIndex[at] = chosen[b][j];
                blockIndex[at] = b;
                gamma[at] = (float)(factor * sums[b][j]);
            }
        }
        return new SeedCoordinates(seedIndex, blockIndex, gamma);
    }

    /// <summary>A uniform <paramref name="count"/>-subset of [0, n), ascending (partial Fisher–Yates).</summary>
    internal static int[] SampleWithoutReplacement(int n, int count, Random random)
    {
        var pool = new int[n];
        for (int i = 0; i < n; i++)
            pool[i] = i;
        for (int i = 0; i < count; i++)
        {
            int j = random.Next(i, n);
            (pool[i], pool[j]) = (pool[j], pool[i]);
        }
        var chosen = pool.AsSpan(0, count).ToArray();
        Array.Sort(chosen);
        return chosen;
    }
}
