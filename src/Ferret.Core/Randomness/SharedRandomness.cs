using System.Runtime.CompilerServices;

namespace Ferret.Core.Randomness;

/// <summary>How basis elements are distributed (shared-randomness.md).</summary>
[System.Text.Json.Serialization.JsonConverter(typeof(System.Text.Json.Serialization.JsonStringEnumConverter<BasisDistribution>))]
public enum BasisDistribution
{
    /// <summary>Uniform on (-1, 1) scaled by 1/sqrt(n): a 24-bit grid, expected norm sqrt(1/3).</summary>
    Uniform,

    /// <summary>+-1/sqrt(n) from bit 31: expected norm 1.</summary>
    Rademacher,
}

/// <summary>
/// Shared randomness, version 1: the scalar reference of the wire contract. Vectorised kernels
/// (<see cref="BasisKernels"/>) must produce exactly these bits.
/// </summary>
public static class SharedRandomness
{
    /// <summary>2^-24, exact in float32.</summary>
    internal const float TwoToMinus24 = 5.9604644775390625E-8f;

    /// <summary>The basis scale <c>a = (float)(1.0 / Math.Sqrt((double)n))</c>: double arithmetic, one rounding.</summary>
    public static float Scale(long blockLength)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(blockLength);
        return (float)(1.0 / Math.Sqrt(blockLength));
    }

    /// <summary><c>E||v||</c>: sqrt(1/3) for uniform bases, 1 for rademacher.</summary>
    public static double ExpectedNorm(BasisDistribution distribution) =>
        distribution == BasisDistribution.Uniform ? Math.Sqrt(1.0 / 3.0) : 1.0;

    /// <summary>The uniform value <c>u = (2x + 1 - 2^24) * 2^-24</c> of a word, <c>x = word &gt;&gt; 8</c>; exact in float32.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Uniform(uint word) => (float)((int)((word >> 8) << 1) + 1 - (1 << 24)) * TwoToMinus24;

    /// <summary>Element <paramref name="index"/> of the basis <c>v</c> of a seed and block of length <paramref name="blockLength"/>.</summary>
    public static float BasisElement(ulong seed, uint block, long blockLength, ulong index, BasisDistribution distribution)
    {
        float a = Scale(blockLength);
        uint word = Philox.Word(seed, block, index);
        return distribution == BasisDistribution.Uniform
            ? Uniform(word) * a
            : ((word & 0x80000000u) == 0 ? a : -a);
    }

    /// <summary>Element <paramref name="index"/> of the unit-variance stream of a seed (FedKSeed's perturbation <c>z</c>).</summary>
    public static float UnitVarianceElement(ulong seed, ulong index, BasisDistribution distribution)
    {
        uint word = Philox.Word(seed, 0, index);
        return distribution == BasisDistribution.Uniform
            ? Uniform(word) * UnitVarianceScale
            : ((word & 0x80000000u) == 0 ? 1f : -1f);
    }

    /// <summary><c>(float)Math.Sqrt(3.0)</c>: scales the uniform stream to unit variance.</summary>
    public static float UnitVarianceScale { get; } = (float)Math.Sqrt(3.0);

    /// <summary>Candidate seed number <paramref name="k"/> of an experiment with seed <paramref name="experimentSeed"/>.</summary>
    public static ulong CandidateSeed(ulong experimentSeed, long k)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(k);
        var (w0, w1, _, _) = Philox.Generate((uint)k, (uint)((ulong)k >> 32), 0xFFFFFFFFu, 0, (uint)experimentSeed, (uint)(experimentSeed >> 32));
        return w0 | ((ulong)w1 << 32);
    }

    /// <summary>The <paramref name="count"/> candidate seeds of an experiment.</summary>
    public static ulong[] CandidateSeeds(ulong experimentSeed, int count)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(count);
        var seeds = new ulong[count];
        for (int k = 0; k < count; k++)
            seeds[k] = CandidateSeed(experimentSeed, k);
        return seeds;
    }
}
