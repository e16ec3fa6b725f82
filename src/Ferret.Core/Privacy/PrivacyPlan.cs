namespace Ferret.Core.Privacy;

/// <summary>
/// Everything one round of private aggregation fixes before any client encodes: the layout of the summed
/// vector (the dense gamma over the round's (block, candidate seed) space, then a slot for the clip indicator
/// under adaptive clipping, then a slot for the training loss under secure aggregation without differential
/// privacy), the fixed-point scales with headroom for the sum, and the integer noise. Coordinator and clients
/// compute it from the same public numbers (settings, assigned and eligible clients, the round's clip norm), so
/// it never travels.
/// </summary>
public sealed record PrivacyPlan
{
    /// <summary>The largest sum a 32-bit two's-complement word holds: 2^31 - 1.</summary>
    public const double MaxSum = int.MaxValue;

    /// <summary>Training losses are clamped to [0, MaxLoss] before they are summed.</summary>
    public const double MaxLoss = 1000;

    /// <summary>Headroom for the summed noise, in its standard deviations.</summary>
    public const double NoiseHeadroom = 8;

    public required int Round { get; init; }

    /// <summary>Clients assigned to the round (n): the most inputs the sum can hold.</summary>
    public required int Assigned { get; init; }

    /// <summary>Clients the round was drawn from; the sampling rate is <c>Assigned / Eligible</c>.</summary>
    public required int Eligible { get; init; }

    /// <summary>Length of the dense gamma: blocks x candidate seeds.</summary>
    public required int GammaLength { get; init; }

    public required bool Secure { get; init; }

    public DifferentialPrivacySettings? DifferentialPrivacy { get; init; }

    /// <summary>Under DP the L2 clip norm C of the round; otherwise the per-coordinate clamp.</summary>
    public required double Bound { get; init; }

    /// <summary>Fixed-point scale of gamma: a value x travels as round(x * scale).</summary>
    public required double GammaScale { get; init; }

    /// <summary>Index of the clip-indicator slot (adaptive clipping), or -1.</summary>
    public int BitSlot { get; init; } = -1;

    /// <summary>The clip indicator b - 1/2 travels as +-BitScale / 2 (an even integer).</summary>
    public double BitScale { get; init; }

    /// <summary>Index of the training-loss slot (secure aggregation without DP), or -1.</summary>
    public int LossSlot { get; init; } = -1;

    public double LossScale { get; init; }

    /// <summary>Threshold t of secure aggregation: distributed noise is split so that any t survivors carry all of it.</summary>
    public int Threshold { get; init; } = 1;

    /// <summary>The noise multiplier spent on gamma (z, or less of it under adaptive clipping).</summary>
    public double UpdateNoiseMultiplier { get; init; }

    /// <summary>sigma_b of the noisy count of unclipped clients (adaptive clipping), in clients.</summary>
    public double CountNoise { get; init; }

    /// <summary>L2 sensitivity of the integer gamma sum to one client: <c>scale * C + sqrt(d) / 2</c> (rounding included).</summary>
    public double GammaSensitivity { get; init; }

    /// <summary>Standard deviation of the total integer noise on each gamma coordinate.</summary>
    public double GammaNoise { get; init; }

    /// <summary>Standard deviation of the total integer noise on the clip-indicator slot.</summary>
    public double BitNoise { get; init; }

    public int VectorLength => GammaLength + (BitSlot >= 0 ? 1 : 0) + (LossSlot >= 0 ? 1 : 0);

    public double SamplingRate => (double)Assigned / Eligible;

    public bool Distributed => DifferentialPrivacy?.Placement == NoisePlacement.Distributed;

    /// <summary>Each client's share of the gamma noise under distributed DP (0 otherwise).</summary>
    public double ClientGammaNoise => Distributed ? GammaNoise / Math.Sqrt(Threshold) : 0;

    public double ClientBitNoise => Distributed ? BitNoise / Math.Sqrt(Threshold) : 0;

    /// <summary>
    /// Bound on the quantization error of each coordinate of the decoded gamma sum: half a step per input,
    /// <c>n / (2 * scale)</c>; it holds whenever the sum fits the word, which the scale guarantees up to the noise headroom.
    /// </summary>
    public double SumErrorBound => Assigned / (2 * GammaScale);

    public static PrivacyPlan Create(PrivacySettings settings, int gammaLength, int round, int assigned, int eligible, double clipNorm)
    {
        ArgumentNullException.ThrowIfNull(settings);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(gammaLength);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(assigned);
        if (eligible < assigned)
            throw new ArgumentOutOfRangeException(nameof(eligible), eligible, $"{assigned} clients cannot be drawn from {eligible}.");
        var dp = settings.DifferentialPrivacy;
        bool secure = settings.SecureAggregation is not null;
        int t = secure ? settings.SecureAggregation!.Threshold : 1;
        double n = assigned;
        double bound = dp is not null ? clipNorm : settings.SecureAggregation?.MaxAbsGamma ?? throw new ArgumentException("The privacy settings are empty.");
        if (!(bound > 0) || !double.IsFinite(bound))
            throw new ArgumentOutOfRangeException(nameof(clipNorm), bound, "The clip norm must be positive.");
        bool adaptive = dp?.AdaptiveClipping is not null;
        double z = dp?.NoiseMultiplier ?? 0;
        double countNoise = adaptive ? dp!.AdaptiveClipping!.CountNoise ?? Math.Max(n / 20, z) : 0;
        double zUpdate = adaptive ? RdpAccountant.UpdateNoiseMultiplier(z, countNoise) : z;
        bool distributed = dp?.Placement == NoisePlacement.Distributed;
        // Summed noise spread: sqrt(n / t) times the total, since up to n clients each add total / sqrt(t).
        double spread = distributed ? NoiseHeadroom * Math.Sqrt(n / t) : 0;
        double rootD = Math.Sqrt(gammaLength);
        // n (scale C + 1/2) + spread z (scale C + sqrt(d)/2) <= MaxSum, solved for the scale.
        double scale = (MaxSum - (n / 2) - (spread * zUpdate * rootD / 2)) / (bound * (n + (spread * zUpdate)));
        if (!(scale > 0))
            throw new ArgumentException($"A round of {assigned} clients leaves no room in 32 bits for the sum; lower the noise or the round size.");
        double sensitivity = (scale * bound) + (rootD / 2);
        int bitSlot = -1, lossSlot = -1;
        double bitScale = 0, lossScale = 0, bitNoise = 0;
        int next = gammaLength;
        if (adaptive)
        {
            bitSlot = next++;
            double room = MaxSum / ((n / 2) + (spread * countNoise));
            bitScale = 2 * Math.Floor(Math.Min(room, 1 << 20) / 2);
            bitNoise = countNoise * bitScale;
        }
        if (secure && dp is null)
        {
            lossSlot = next;
            lossScale = (MaxSum - (n / 2)) / (n * MaxLoss);
        }
        return new PrivacyPlan
        {
            Round = round,
            Assigned = assigned,
            Eligible = eligible,
            GammaLength = gammaLength,
            Secure = secure,
            DifferentialPrivacy = dp,
            Bound = bound,
            GammaScale = scale,
            BitSlot = bitSlot,
            BitScale = bitScale,
            LossSlot = lossSlot,
            LossScale = lossScale,
            Threshold = t,
            UpdateNoiseMultiplier = zUpdate,
            CountNoise = countNoise,
            GammaSensitivity = sensitivity,
            GammaNoise = dp is null ? 0 : zUpdate * sensitivity,
            BitNoise = bitNoise,
        };
    }
}
