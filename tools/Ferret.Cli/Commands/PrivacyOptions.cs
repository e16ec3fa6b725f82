using System.CommandLine;
using System.Globalization;
using Ferret.Core.Privacy;

namespace Ferret.Cli.Commands;

/// <summary>
/// The private-aggregation options of <c>ferret simulate</c>. Without <c>--compare</c> they switch secure
/// aggregation and DP on for the run; in <c>--compare</c>, entries such as <c>ferret+secagg</c>, <c>ferret+dp</c>,
/// <c>ferret+secagg+dp@4</c> (target epsilon 4) are private and take their parameters from these options.
/// </summary>
internal sealed class PrivacyOptions
{
    public Option<bool> Secure { get; } = new("--secure-aggregation") { Description = "Secure aggregation of gamma (SecAgg+): the coordinator sees only sums." };

    public Option<int> Threshold { get; } = new("--threshold") { Description = "Shares needed to unmask (default: two thirds of a round's clients, at least 2)." };

    public Option<int> Neighbours { get; } = new("--neighbours") { Description = "SecAgg+ neighbours per client (0: every other client of the round).", DefaultValueFactory = _ => 0 };

    public Option<double?> Noise { get; } = new("--dp-noise") { Description = "Differential privacy: noise multiplier z." };

    public Option<double?> Epsilon { get; } = new("--dp-epsilon") { Description = "Differential privacy: target epsilon after all rounds (the noise multiplier is solved for)." };

    public Option<double?> Clip { get; } = new("--dp-clip") { Description = "Differential privacy: L2 clip norm of a client's gamma vector (the start value with --dp-adaptive)." };

    public Option<double> Delta { get; } = new("--dp-delta") { Description = "Differential privacy: delta.", DefaultValueFactory = _ => 1e-5 };

    public Option<string> Mode { get; } = new("--dp-mode") { Description = "central (the coordinator adds the noise) or distributed (clients do; needs secure aggregation).", DefaultValueFactory = _ => "central" };

    public Option<bool> Adaptive { get; } = new("--dp-adaptive") { Description = "Adaptive clipping (Andrew et al. 2021): the clip norm tracks the median update norm." };

    public PrivacyOptions() => Mode.AcceptOnlyFromAmong("central", "distributed");

    public IEnumerable<Option> All => [Secure, Threshold, Neighbours, Noise, Epsilon, Clip, Delta, Mode, Adaptive];

    /// <summary>Splits a --compare entry into its algorithm and privacy switches: <c>ferret+secagg+dp@4</c>.</summary>
    public static (string Algorithm, bool Secure, bool Private, double? TargetEpsilon) ParseEntry(string entry)
    {
        var parts = entry.Split('+', StringSplitOptions.TrimEntries);
        bool secure = false, dp = false;
        double? target = null;
        foreach (var p in parts.Skip(1))
        {
            if (p == "secagg")
            {
                secure = true;
            }
            else if (p == "dp" || p.StartsWith("dp@", StringComparison.Ordinal))
            {
                dp = true;
                if (p.Length > 2)
                {
                    target = double.TryParse(p[3..], NumberStyles.Float, CultureInfo.InvariantCulture, out var e) && e > 0
                        ? e
                        : throw new ArgumentException($"--compare: '{entry}' names epsilon '{p[3..]}', which is not a positive number.");
                }
            }
            else
            {
                throw new ArgumentException($"--compare: '{entry}' has the unknown part '+{p}' (expected +secagg, +dp or +dp@EPSILON).");
            }
        }
        return (parts[0], secure, dp, target);
    }

    /// <summary>The privacy settings of one run, or null for a run in the clear.</summary>
    public PrivacySettings? Build(ParseResult parse, bool secure, bool dp, double? targetEpsilon, int perRound, double samplingRate, int rounds)
    {
        ArgumentNullException.ThrowIfNull(parse);
        if (!secure && !dp)
            return null;
        var settings = new PrivacySettings();
        bool distributed = parse.GetValue(Mode) == "distributed";
        if (secure)
        {
            int t = parse.GetValue(Threshold);
            settings.SecureAggregation = new SecureAggregationSettings
            {
                Threshold = t > 0 ? t : Math.Max(2, (int)Math.Ceiling(2.0 * perRound / 3)),
                Neighbours = parse.GetValue(Neighbours),
            };
            if (settings.SecureAggregation.Threshold > perRound)
                throw new ArgumentException($"--threshold {settings.SecureAggregation.Threshold} exceeds the {perRound} clients of a round.");
        }
        if (dp)
        {
            double delta = parse.GetValue(Delta);
            double? z = parse.GetValue(Noise);
            double? goal = targetEpsilon ?? parse.GetValue(Epsilon);
            if (goal is not null && (targetEpsilon is not null || z is null))
                z = RdpAccountant.NoiseMultiplierFor(goal.Value, samplingRate, rounds, delta);
            var clip = parse.GetValue(Clip) ?? throw new ArgumentException("Differential privacy needs --dp-clip (the L2 norm each client's gamma is clipped to).");
            settings.DifferentialPrivacy = new DifferentialPrivacySettings
            {
                NoiseMultiplier = z ?? throw new ArgumentException("Differential privacy needs --dp-noise or --dp-epsilon (or +dp@EPSILON in --compare)."),
                ClipNorm = clip,
                Delta = delta,
                Placement = distributed ? NoisePlacement.Distributed : NoisePlacement.Central,
                AdaptiveClipping = parse.GetValue(Adaptive) ? new AdaptiveClippingSettings() : null,
            };
        }
        return settings;
    }
}
