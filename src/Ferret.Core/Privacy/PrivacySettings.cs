using MessagePack;

namespace Ferret.Core.Privacy;

/// <summary>Where the Gaussian noise of differential privacy is added.</summary>
public enum NoisePlacement
{
    /// <summary>The coordinator adds all of it to the aggregate (it sees the exact sum; observers and clients do not).</summary>
    Central,

    /// <summary>Every client adds its part before masking, so even the coordinator only sees a noisy sum (needs secure aggregation).</summary>
    Distributed,
}

/// <summary>Secure aggregation of an experiment (Bonawitz et al. 2017; SecAgg+ neighbourhoods, Bell et al. 2020).</summary>
[MessagePackObject]
public sealed class SecureAggregationSettings
{
    /// <summary>Shares needed to rebuild a client's secrets, and the fewest inputs whose sum is released.</summary>
    [Key(0)]
    public int Threshold { get; set; } = 2;

    /// <summary>Neighbours per client (k, rounded up to even); 0 masks with every other client of the round.</summary>
    [Key(1)]
    public int Neighbours { get; set; }

    /// <summary>Without differential privacy: every gamma is clamped to [-MaxAbsGamma, MaxAbsGamma] before quantization.</summary>
    [Key(2)]
    public double MaxAbsGamma { get; set; } = 1000;

    /// <summary>Seconds the coordinator waits for public keys after the assignments go out.</summary>
    [Key(3)]
    public int KeysSeconds { get; set; } = 60;

    /// <summary>Seconds it waits for the encrypted shares.</summary>
    [Key(4)]
    public int SharesSeconds { get; set; } = 60;

    /// <summary>Seconds it waits for the unmasking shares after the inputs are in.</summary>
    [Key(5)]
    public int UnmaskSeconds { get; set; } = 60;

    public void Validate()
    {
        if (Threshold < 2)
            throw new ArgumentException($"Secure aggregation field 'threshold' = {Threshold}: at least 2 (one share would reveal a secret).");
        if (Neighbours < 0)
            throw new ArgumentException($"Secure aggregation field 'neighbours' = {Neighbours}: 0 (everyone) or a positive count.");
        if (Neighbours > 0 && Neighbours + 1 < Threshold)
            throw new ArgumentException($"Secure aggregation: {Neighbours} neighbours and the client itself cannot hold {Threshold} shares; 'threshold' must not exceed 'neighbours' + 1.");
        if (!(MaxAbsGamma > 0) || !double.IsFinite(MaxAbsGamma))
            throw new ArgumentException($"Secure aggregation field 'maxAbsGamma' = {MaxAbsGamma}: positive.");
        foreach (var (name, value) in new[] { ("keysSeconds", KeysSeconds), ("sharesSeconds", SharesSeconds), ("unmaskSeconds", UnmaskSeconds) })
        {
            if (value is < 1 or > 24 * 3600)
                throw new ArgumentException($"Secure aggregation field '{name}' = {value}: 1 second to 1 day.");
        }
    }
}

/// <summary>Adaptive clipping (Andrew et al. 2021): the clip norm tracks a quantile of the clients' update norms.</summary>
[MessagePackObject]
public sealed class AdaptiveClippingSettings
{
    /// <summary>The fraction of clients whose update should fall under the clip norm (gamma in the paper).</summary>
    [Key(0)]
    public double TargetQuantile { get; set; } = 0.5;

    /// <summary>Geometric update rate eta_C: <c>C &lt;- C exp(-eta_C (b - gamma))</c>.</summary>
    [Key(1)]
    public double LearningRate { get; set; } = 0.2;

    /// <summary>Noise on the count of unclipped clients, sigma_b (null: the round's clients / 20, at least the noise multiplier).</summary>
    [Key(2)]
    public double? CountNoise { get; set; }

    public void Validate()
    {
        if (!(TargetQuantile is > 0 and < 1))
            throw new ArgumentException($"Adaptive clipping field 'targetQuantile' = {TargetQuantile}: in (0, 1).");
        if (!(LearningRate > 0) || !double.IsFinite(LearningRate))
            throw new ArgumentException($"Adaptive clipping field 'learningRate' = {LearningRate}: positive.");
        if (CountNoise is { } s && (!(s > 0) || !double.IsFinite(s)))
            throw new ArgumentException($"Adaptive clipping field 'countNoise' = {s}: positive.");
    }
}

/// <summary>User-level differential privacy of the gamma vector (DP-FedAvg, McMahan et al. 2018).</summary>
[MessagePackObject]
public sealed class DifferentialPrivacySettings
{
    /// <summary>Noise multiplier z: the noise standard deviation over the clip norm.</summary>
    [Key(0)]
    public double NoiseMultiplier { get; set; } = 1.0;

    /// <summary>L2 clip norm C of a client's gamma vector (the starting value under adaptive clipping).</summary>
    [Key(1)]
    public double ClipNorm { get; set; } = 1.0;

    /// <summary>The delta of the (epsilon, delta) statement.</summary>
    [Key(2)]
    public double Delta { get; set; } = 1e-5;

    [Key(3)]
    public NoisePlacement Placement { get; set; } = NoisePlacement.Central;

    [Key(4)]
    public AdaptiveClippingSettings? AdaptiveClipping { get; set; }

    public void Validate()
    {
        if (!(NoiseMultiplier > 0) || !double.IsFinite(NoiseMultiplier))
            throw new ArgumentException($"Differential privacy field 'noiseMultiplier' = {NoiseMultiplier}: positive (0 would add no noise and promise nothing).");
        if (!(ClipNorm > 0) || !double.IsFinite(ClipNorm))
            throw new ArgumentException($"Differential privacy field 'clipNorm' = {ClipNorm}: positive.");
        if (!(Delta is > 0 and < 1))
            throw new ArgumentException($"Differential privacy field 'delta' = {Delta}: in (0, 1).");
        AdaptiveClipping?.Validate();
        if (AdaptiveClipping?.CountNoise is { } s && s <= NoiseMultiplier / 2)
            throw new ArgumentException($"Adaptive clipping field 'countNoise' = {s} must exceed half the noise multiplier ({NoiseMultiplier / 2}).");
    }
}

/// <summary>How an experiment keeps clients' updates private; both parts are optional and combine.</summary>
[MessagePackObject]
public sealed class PrivacySettings
{
    [Key(0)]
    public SecureAggregationSettings? SecureAggregation { get; set; }

    [Key(1)]
    public DifferentialPrivacySettings? DifferentialPrivacy { get; set; }

    [IgnoreMember]
    public bool IsEmpty => SecureAggregation is null && DifferentialPrivacy is null;

    /// <summary>Checks the settings and their fit with the algorithm; messages name the field.</summary>
    public void Validate(string algorithm, Aggregation.ClientWeighting weighting)
    {
        SecureAggregation?.Validate();
        DifferentialPrivacy?.Validate();
        if (IsEmpty)
            return;
        if (algorithm != Algorithms.FederatedAlgorithms.Ferret)
            throw new ArgumentException($"Secure aggregation and differential privacy work on Ferret's gamma vector; algorithm '{algorithm}' is not supported.");
        if (weighting != Aggregation.ClientWeighting.Equal)
            throw new ArgumentException("Private aggregation weights clients equally: a sample-count weight would travel in the clear and scale the sensitivity.");
        if (DifferentialPrivacy?.Placement == NoisePlacement.Distributed && SecureAggregation is null)
            throw new ArgumentException("Distributed noise needs secure aggregation: without masking, the coordinator would see each client's lightly-noised update.");
    }
}
