using Ferret.Core.Algorithms;
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
        var sums = new double[blocks.Count];
        SumsOfSquares(delta, 0, blocks, null, options, sums);
        return Roots(sums, blocks);
    }

    /// <summary>Adds the squared norm of every block of <paramref name="include"/> (all when null), reading a chunk that starts at element <paramref name="offset"/>.</summary>
    private static void SumsOfSquares(ReadOnlyMemory<float> data, long offset, ParameterBlocks blocks, Func<int, bool>? include, KernelOptions options, double[] sums)
    {
        var items = options.WorkItems(blocks, include);
        var partial = new double[items.Count];
        Parallel.For(0, items.Count, options.Parallel, i =>
        {
            var (b, start, length) = items[i];
            var span = data.Span.Slice((int)(blocks[b].Offset - offset + start), length);
            double s = System.Numerics.Tensors.TensorPrimitives.SumOfSquares(span);
            if (!double.IsFinite(s))
                s = Exact(span);
            partial[i] = s;
        });
        for (int i = 0; i < items.Count; i++)
            sums[items[i].Block] += partial[i];
    }

    private static double[] Roots(double[] sums, ParameterBlocks blocks)
    {
        for (int b = 0; b < sums.Length; b++)
        {
            if (!double.IsFinite(sums[b]))
                throw new InvalidDataException($"The local update has non-finite values in block {b} (elements {blocks[b].Offset}..{blocks[b].End - 1}); it is not sent.");
            sums[b] = Math.Sqrt(sums[b]);
        }
        return sums;
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
        if (delta.Length != blocks.TotalLength)
            throw new ArgumentException($"The update has {delta.Length} elements; the blocks cover {blocks.TotalLength}.", nameof(delta));
        using var update = new MemoryUpdate(delta);
        return Project(update, blocks, candidateSeeds, distribution, random, options);
    }

    /// <summary>
    /// Projects an update read chunk by chunk (whole blocks per chunk, at most <paramref name="chunkElements"/> elements
    /// unless one block is longer): two passes, norms then dot products, so only one chunk is ever in host memory.
    /// The result is bit-identical to projecting the whole vector at once: every block's partial sums are reduced in
    /// the same order.
    /// </summary>
    public static SeedCoordinates Project(
        ILocalUpdate delta, ParameterBlocks blocks, IReadOnlyList<ulong> candidateSeeds,
        BasisDistribution distribution, Random random, KernelOptions? options = null, long chunkElements = DefaultChunkElements)
    {
        ArgumentNullException.ThrowIfNull(delta);
        ArgumentNullException.ThrowIfNull(blocks);
        ArgumentNullException.ThrowIfNull(candidateSeeds);
        ArgumentNullException.ThrowIfNull(random);
        options ??= KernelOptions.Default;
        options.Validate();
        if (delta.Length != blocks.TotalLength)
            throw new ArgumentException($"The update has {delta.Length} elements; the blocks cover {blocks.TotalLength}.", nameof(delta));
        var chunks = Chunks(blocks, chunkElements);
        bool whole = delta.TryGetMemory(out var memory);
        float[]? staging = whole ? null : new float[chunks.Max(c => c.Length)];
        ReadOnlyMemory<float> Load((int First, int Last, long Offset, long Length) chunk)
        {
            if (whole)
                return memory;
            var span = staging.AsMemory(0, checked((int)chunk.Length));
            delta.Read(chunk.Offset, span.Span);
            return span;
        }

        var sums = new double[blocks.Count];
        foreach (var chunk in chunks)
        {
            var data = Load(chunk);
            SumsOfSquares(data, whole ? 0 : chunk.Offset, blocks, b => b >= chunk.First && b <= chunk.Last, options, sums);
        }
        var counts = SeedCounts(Roots(sums, blocks), candidateSeeds.Count);

        var chosen = new int[blocks.Count][];
        var seeds = new ulong[blocks.Count][];
        for (int b = 0; b < blocks.Count; b++)
        {
            chosen[b] = SampleWithoutReplacement(candidateSeeds.Count, counts[b], random);
            seeds[b] = chosen[b].Select(k => candidateSeeds[k]).ToArray();
        }

        var dots = new double[blocks.Count][];
        for (int b = 0; b < blocks.Count; b++)
            dots[b] = new double[counts[b]];
        foreach (var chunk in chunks)
        {
            var data = Load(chunk);
            long offset = whole ? 0 : chunk.Offset;
            var items = options.WorkItems(blocks, b => b >= chunk.First && b <= chunk.Last);
            var partial = new double[items.Count][];
            var path = options.Path;
            Parallel.For(0, items.Count, options.Parallel, i =>
            {
                var (b, start, length) = items[i];
                var block = blocks[b];
                var d = new double[seeds[b].Length];
                var span = data.Span.Slice((int)(block.Offset - offset + start), length);
                BasisKernels.Dot(seeds[b], (uint)b, SharedRandomness.Scale(block.Length), distribution, span, (ulong)start, d, path);
                partial[i] = d;
            });
            for (int i = 0; i < items.Count; i++)
            {
                var s = dots[items[i].Block];
                for (int j = 0; j < s.Length; j++)
                    s[j] += partial[i][j];
            }
        }

        int total = counts.Sum();
        var seedIndex = new int[total];
        var blockIndex = new int[total];
        var gamma = new float[total];
        int at = 0;
        for (int b = 0; b < blocks.Count; b++)
        {
            double factor = (double)blocks[b].Length / counts[b];
            for (int j = 0; j < counts[b]; j++, at++)
            {
                seedIndex[at] = chosen[b][j];
                blockIndex[at] = b;
                gamma[at] = (float)(factor * dots[b][j]);
            }
        }
        return new SeedCoordinates(seedIndex, blockIndex, gamma);
    }

    /// <summary>Elements per chunk of a streamed projection: 64 Mi floats (256 MiB of staging).</summary>
    public const long DefaultChunkElements = 64L << 20;

    /// <summary>Runs of consecutive whole blocks of at most <paramref name="limit"/> elements (a longer block is a chunk of its own).</summary>
    internal static List<(int First, int Last, long Offset, long Length)> Chunks(ParameterBlocks blocks, long limit)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(limit, 1);
        var chunks = new List<(int, int, long, long)>();
        int first = 0;
        long length = 0;
        for (int b = 0; b < blocks.Count; b++)
        {
            if (length > 0 && length + blocks[b].Length > limit)
            {
                chunks.Add((first, b - 1, blocks[first].Offset, length));
                first = b;
                length = 0;
            }
            length += blocks[b].Length;
        }
        if (blocks.Count > 0)
            chunks.Add((first, blocks.Count - 1, blocks[first].Offset, length));
        if (chunks.Any(c => c.Item4 > Array.MaxLength))
            throw new NotSupportedException($"A block of more than {Array.MaxLength} elements cannot be projected.");
        return chunks;
    }

    private sealed class MemoryUpdate(ReadOnlyMemory<float> delta) : ILocalUpdate
    {
        public long Length => delta.Length;

        public void Read(long offset, Span<float> destination) => delta.Span.Slice(checked((int)offset), destination.Length).CopyTo(destination);

        public bool TryGetMemory(out ReadOnlyMemory<float> memory)
        {
            memory = delta;
            return true;
        }

        public void Dispose()
        {
        }
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
