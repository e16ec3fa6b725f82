using System.Buffers.Binary;
using Ferret.Core.Algorithms;
using Ferret.Core.Packets;

namespace Ferret.Core.Privacy;

/// <summary>What a private round released besides its update: the guarantee so far and the numbers behind it.</summary>
public sealed record RoundPrivacy(
    bool SecureAggregation, int Contributors, double? Epsilon, double? Delta, int? Order, double? NoiseMultiplier, double? ClipNorm,
    double? SamplingRate, double? UnclippedFraction, double? NextClipNorm, double QuantizationErrorBound);

/// <summary>A private round's outcome: the global update, its privacy line, and the mean train loss where it may be told.</summary>
public sealed record PrivateRound(GlobalUpdate Update, RoundPrivacy Privacy, double? MeanTrainLoss);

/// <summary>
/// The coordinator's private aggregation for a Ferret experiment. It plans each round (clip norm, fixed point,
/// noise), turns the round's integer sum, from secure aggregation or from packets it clipped itself, into the
/// mean gamma (adding the central noise when the noise is central), hands that to Ferret's seed pool, moves the
/// adaptive clip norm, and keeps the RDP ledger. Its state (seed pool, clip norm, ledger) is one blob for the
/// round log.
/// </summary>
public sealed class PrivateAggregation
{
    private const int StateVersion = 1;
    private readonly ExperimentDescriptor _experiment;
    private readonly FerretAlgorithm _ferret;
    private readonly PrivacySettings _settings;
    private readonly DiscreteGaussian _noise;
    private PrivacyLedger _ledger = new();

    public PrivateAggregation(ExperimentDescriptor experiment, FerretAlgorithm ferret, ISecretSource? noise = null)
    {
        ArgumentNullException.ThrowIfNull(experiment);
        ArgumentNullException.ThrowIfNull(ferret);
        _settings = experiment.Privacy is { IsEmpty: false } p ? p : throw new ArgumentException($"Experiment '{experiment.Id}' has no privacy settings.");
        _experiment = experiment;
        _ferret = ferret;
        _noise = new DiscreteGaussian(noise ?? PlatformSecrets.Instance);
        ClipNorm = _settings.DifferentialPrivacy?.ClipNorm ?? 0;
    }

    public PrivacySettings Settings => _settings;

    public bool Secure => _settings.SecureAggregation is not null;

    /// <summary>The clip norm the next round uses (it moves under adaptive clipping).</summary>
    public double ClipNorm { get; private set; }

    public int GammaLength => _ferret.DenseLength;

    /// <summary>Rounds released under differential privacy so far.</summary>
    public int AccountedRounds => _ledger.Rounds;

    /// <summary>Epsilon spent so far at the experiment's delta (0 before the first round; null without DP).</summary>
    public (double Epsilon, int Order)? Spent =>
        _settings.DifferentialPrivacy is { } dp ? _ledger.Epsilon(dp.Delta) : null;

    public PrivacyPlan Plan(int round, int assigned, int eligible) =>
        PrivacyPlan.Create(_settings, GammaLength, round, assigned, eligible, ClipNorm);

    /// <summary>Central DP without secure aggregation: the coordinator clips and quantizes each packet itself, then sums.</summary>
    public PrivateRound AggregatePackets(int round, PrivacyPlan plan, IReadOnlyList<FerretUpdate> updates)
    {
        ArgumentNullException.ThrowIfNull(plan);
        ArgumentNullException.ThrowIfNull(updates);
        if (plan.Secure)
            throw new InvalidOperationException("Under secure aggregation the coordinator never holds packets; aggregate the unmasked sum.");
        var sum = new long[plan.VectorLength];
        foreach (var u in updates)
        {
            var q = PrivateEncoding.Quantize(u, plan, _experiment.Settings.CandidateSeeds, out _);
            for (int i = 0; i < sum.Length; i++)
                sum[i] += q[i];
        }
        double? loss = updates.Count > 0 && plan.DifferentialPrivacy is null ? updates.Average(u => u.Stats.Loss) : null;
        return Finish(round, plan, sum, updates.Count, loss);
    }

    /// <summary>Secure aggregation: the unmasked sum modulo 2^32 over <paramref name="contributors"/> inputs.</summary>
    public PrivateRound AggregateSum(int round, PrivacyPlan plan, ReadOnlySpan<uint> sum, int contributors)
    {
        ArgumentNullException.ThrowIfNull(plan);
        if (sum.Length != plan.VectorLength)
            throw new ArgumentException($"The sum has {sum.Length} words; the round's layout has {plan.VectorLength}.", nameof(sum));
        var values = PrivateEncoding.AsIntegers(sum);
        double? loss = plan.LossSlot >= 0 && contributors > 0 ? values[plan.LossSlot] / plan.LossScale / contributors : null;
        return Finish(round, plan, values, contributors, loss);
    }

    private PrivateRound Finish(int round, PrivacyPlan plan, long[] sum, int contributors, double? meanLoss)
    {
        if (contributors < 1)
            throw new ArgumentOutOfRangeException(nameof(contributors), contributors, "A private round needs at least one input.");
        var dp = plan.DifferentialPrivacy;
        if (dp is not null && dp.Placement == NoisePlacement.Central)
        {
            _noise.AddNoise(sum.AsSpan(0, plan.GammaLength), plan.GammaNoise);
            if (plan.BitSlot >= 0)
                sum[plan.BitSlot] += _noise.Sample(plan.BitNoise);
        }
        // DP-FedAvg's fixed denominator (the round's assigned clients) keeps the sensitivity C / n; without DP, the mean of what arrived.
        double denominator = dp is not null ? plan.Assigned : contributors;
        var mean = new double[plan.GammaLength];
        for (int i = 0; i < mean.Length; i++)
            mean[i] = sum[i] / plan.GammaScale / denominator;
        var update = _ferret.AggregateMean(round, mean, contributors);
        double? unclipped = null, next = null;
        if (plan.BitSlot >= 0)
        {
            var adaptive = dp!.AdaptiveClipping!;
            double count = (sum[plan.BitSlot] / plan.BitScale) + (contributors / 2.0);
            unclipped = count / plan.Assigned;
            ClipNorm *= Math.Exp(-adaptive.LearningRate * (unclipped.Value - adaptive.TargetQuantile));
            next = ClipNorm;
        }
        (double Epsilon, int Order)? spent = null;
        if (dp is not null)
        {
            _ledger.Add(plan.SamplingRate, dp.NoiseMultiplier);
            spent = _ledger.Epsilon(dp.Delta);
        }
        var privacy = new RoundPrivacy(plan.Secure, contributors, spent?.Epsilon, dp?.Delta, spent?.Order, dp?.NoiseMultiplier, dp is null ? null : plan.Bound,
            dp is null ? null : plan.SamplingRate, unclipped, next, contributors / (2 * plan.GammaScale) / denominator);
        return new PrivateRound(update, privacy, meanLoss);
    }

    /// <summary>Seed pool, clip norm and ledger as one blob.</summary>
    public byte[] ExportState()
    {
        var pool = _ferret.ExportState() ?? [];
        var ledger = _ledger.Export();
        var bytes = new byte[4 + 4 + pool.Length + 8 + ledger.Length];
        BinaryPrimitives.WriteInt32LittleEndian(bytes, StateVersion);
        BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(4), pool.Length);
        pool.CopyTo(bytes, 8);
        BinaryPrimitives.WriteDoubleLittleEndian(bytes.AsSpan(8 + pool.Length), ClipNorm);
        ledger.CopyTo(bytes, 16 + pool.Length);
        return bytes;
    }

    public void ImportState(ReadOnlySpan<byte> state)
    {
        if (state.Length < 16 || BinaryPrimitives.ReadInt32LittleEndian(state) != StateVersion)
            throw new InvalidDataException("The private aggregation state is not version-1 data.");
        int poolLength = BinaryPrimitives.ReadInt32LittleEndian(state[4..]);
        if (poolLength < 0 || state.Length < 16 + poolLength)
            throw new InvalidDataException($"The private aggregation state holds {state.Length} bytes for a {poolLength}-byte seed pool.");
        var ledger = PrivacyLedger.Import(state[(16 + poolLength)..]);
        _ferret.ImportState(state.Slice(8, poolLength));
        ClipNorm = BinaryPrimitives.ReadDoubleLittleEndian(state[(8 + poolLength)..]);
        _ledger = ledger;
    }
}
