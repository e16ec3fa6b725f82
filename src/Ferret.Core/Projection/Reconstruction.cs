using Ferret.Core.Parameters;
using Ferret.Core.Randomness;

namespace Ferret.Core.Projection;

/// <summary>
/// Applies a seed-coefficient global update bit-exactly (shared-randomness.md): for every block, every
/// coefficient in ascending seed index, every element, <c>w_i = float32(w_i - float32(c * v_i))</c>.
/// Tiles of a block are independent, so work runs in parallel over (block, tile) items; inside a tile every
/// seed of the block is applied while the tile is in cache.
/// </summary>
public static class Reconstruction
{
    public static void Apply(
        Memory<float> parameters, ParameterBlocks blocks, SeedCoordinates coefficients, IReadOnlyList<ulong> candidateSeeds,
        BasisDistribution distribution, KernelOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(blocks);
        ArgumentNullException.ThrowIfNull(coefficients);
        ArgumentNullException.ThrowIfNull(candidateSeeds);
        options ??= KernelOptions.Default;
        options.Validate();
        if (parameters.Length != blocks.TotalLength)
            throw new ArgumentException($"The model has {parameters.Length} parameters; the blocks cover {blocks.TotalLength}.", nameof(parameters));

        var ranges = coefficients.BlockRanges();
        var seeds = new Dictionary<int, (ulong[] Seeds, float[] Coefficients)>();
        foreach (var (b, (start, count)) in ranges)
        {
            if ((uint)b >= (uint)blocks.Count)
                throw new ArgumentException($"Coefficient for block {b}; the model has {blocks.Count} blocks.", nameof(coefficients));
            var s = new ulong[count];
            var c = new float[count];
            int previous = -1;
            for (int j = 0; j < count; j++)
            {
                int k = coefficients.SeedIndices[start + j];
                if ((uint)k >= (uint)candidateSeeds.Count)
                    throw new ArgumentException($"Seed index {k} in block {b} is outside [0, {candidateSeeds.Count}).", nameof(coefficients));
                if (k <= previous)
                    throw new ArgumentException($"Seed indices of block {b} must ascend strictly ({previous} then {k}).", nameof(coefficients));
                previous = k;
                s[j] = candidateSeeds[k];
                c[j] = coefficients.Values[start + j];
            }
            seeds[b] = (s, c);
        }

        var items = options.WorkItems(blocks, seeds.ContainsKey);
        var path = options.Path;
        Parallel.For(0, items.Count, options.Parallel, i =>
        {
            var (b, start, length) = items[i];
            var block = blocks[b];
            var (s, c) = seeds[b];
            var w = parameters.Span.Slice((int)(block.Offset + start), length);
            BasisKernels.Apply(s, c, (uint)b, SharedRandomness.Scale(block.Length), distribution, w, (ulong)start, path);
        });
    }
}
