using Ferret.Core.Randomness;

namespace Ferret.Core.Projection;

/// <summary>
/// FedKSeed's perturbations <c>z_k</c>: the unit-variance stream of a seed over the whole parameter vector
/// (block 0; uniform values scaled by sqrt(3), or +-1). Applying <c>w -= sum_k c_k z_k</c> follows the same
/// two-rounding rule as Ferret's reconstruction, so every participant stays bit-identical.
/// </summary>
public static class SeedPerturbations
{
    private static float Scale(BasisDistribution distribution) =>
        distribution == BasisDistribution.Uniform ? SharedRandomness.UnitVarianceScale : 1f;

    /// <summary>Writes <c>z</c> of a seed into <paramref name="destination"/> (whole vector).</summary>
    public static void Fill(ulong seed, BasisDistribution distribution, Memory<float> destination, KernelOptions? options = null)
    {
        options ??= KernelOptions.Default;
        var path = options.Path;
        ForEachTile(destination.Length, options, (start, length) =>
            BasisKernels.Fill(seed, 0, Scale(distribution), distribution, destination.Span.Slice(start, length), (ulong)start, path));
    }

    /// <summary><c>w = w - c_k z_k</c> for each seed in order, element-wise with two roundings.</summary>
    public static void Apply(ReadOnlyMemory<ulong> seeds, ReadOnlyMemory<float> coefficients, BasisDistribution distribution, Memory<float> weights, KernelOptions? options = null)
    {
        options ??= KernelOptions.Default;
        var path = options.Path;
        ForEachTile(weights.Length, options, (start, length) =>
            BasisKernels.Apply(seeds.Span, coefficients.Span, 0, Scale(distribution), distribution, weights.Span.Slice(start, length), (ulong)start, path));
    }

    /// <summary>Runs <paramref name="body"/> over work items of the vector in parallel; items are independent.</summary>
    private static void ForEachTile(int length, KernelOptions options, Action<int, int> body)
    {
        options.Validate();
        int items = (length + options.WorkItemLength - 1) / options.WorkItemLength;
        Parallel.For(0, items, options.Parallel, i =>
        {
            int start = i * options.WorkItemLength;
            body(start, Math.Min(options.WorkItemLength, length - start));
        });
    }
}
