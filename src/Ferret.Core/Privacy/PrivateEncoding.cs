using Ferret.Core.Packets;

namespace Ferret.Core.Privacy;

/// <summary>
/// A client's contribution to a private round as integers: its sparse gamma laid out densely over the round's
/// (block, candidate seed) space (dense, so which seeds it chose does not show), clipped to the round's L2 norm
/// under differential privacy or clamped per coordinate otherwise, quantized to fixed point, and followed by
/// the clip indicator and the training loss where the plan has slots for them.
/// </summary>
public static class PrivateEncoding
{
    /// <summary>Position of gamma (seed k, block b) in the dense vector: <c>b * K + k</c>, the seed pool's order.</summary>
    public static int DenseIndex(int seedIndex, int block, int candidateSeeds) => (block * candidateSeeds) + seedIndex;

    /// <summary>The integer vector before any noise or mask; <paramref name="unclipped"/> says whether the L2 norm was within the clip norm.</summary>
    public static long[] Quantize(FerretUpdate update, PrivacyPlan plan, int candidateSeeds, out bool unclipped)
    {
        ArgumentNullException.ThrowIfNull(update);
        ArgumentNullException.ThrowIfNull(plan);
        var dense = new double[plan.GammaLength];
        for (int i = 0; i < update.Gammas.Length; i++)
        {
            int at = DenseIndex(update.SeedIndices[i], update.Blocks[i], candidateSeeds);
            if ((uint)at >= (uint)dense.Length)
                throw new ArgumentException($"Seed {update.SeedIndices[i]} of block {update.Blocks[i]} lies outside the round's {plan.GammaLength} coordinates.", nameof(update));
            dense[at] += update.Gammas[i];
        }
        double factor = 1;
        unclipped = true;
        if (plan.DifferentialPrivacy is not null)
        {
            double norm = Math.Sqrt(System.Numerics.Tensors.TensorPrimitives.SumOfSquares<double>(dense));
            if (!double.IsFinite(norm))
                throw new ArgumentException("The update has non-finite gammas.", nameof(update));
            unclipped = norm <= plan.Bound;
            factor = unclipped ? 1 : plan.Bound / norm;
        }
        var q = new long[plan.VectorLength];
        for (int i = 0; i < dense.Length; i++)
        {
            double x = Math.Clamp(dense[i] * factor, -plan.Bound, plan.Bound);
            q[i] = (long)Math.Round(x * plan.GammaScale, MidpointRounding.ToEven);
        }
        if (plan.BitSlot >= 0)
            q[plan.BitSlot] = (long)(plan.BitScale / 2) * (unclipped ? 1 : -1);
        if (plan.LossSlot >= 0)
        {
            double loss = double.IsFinite(update.Stats.Loss) ? Math.Clamp(update.Stats.Loss, 0, PrivacyPlan.MaxLoss) : 0;
            q[plan.LossSlot] = (long)Math.Round(loss * plan.LossScale, MidpointRounding.ToEven);
        }
        return q;
    }

    /// <summary>What a client hands to secure aggregation: the quantized vector with its share of distributed noise, modulo 2^32.</summary>
    public static uint[] ForMasking(FerretUpdate update, PrivacyPlan plan, int candidateSeeds, ISecretSource noise)
    {
        ArgumentNullException.ThrowIfNull(plan);
        var q = Quantize(update, plan, candidateSeeds, out _);
        if (plan.Distributed)
        {
            var sampler = new DiscreteGaussian(noise);
            sampler.AddNoise(q.AsSpan(0, plan.GammaLength), plan.ClientGammaNoise);
            if (plan.BitSlot >= 0)
                q[plan.BitSlot] += sampler.Sample(plan.ClientBitNoise);
        }
        var words = new uint[q.Length];
        for (int i = 0; i < q.Length; i++)
            words[i] = unchecked((uint)q[i]);
        return words;
    }

    /// <summary>A modular sum read back as signed integers (it fits 32 bits by the plan's headroom).</summary>
    public static long[] AsIntegers(ReadOnlySpan<uint> sum)
    {
        var values = new long[sum.Length];
        for (int i = 0; i < sum.Length; i++)
            values[i] = unchecked((int)sum[i]);
        return values;
    }
}
