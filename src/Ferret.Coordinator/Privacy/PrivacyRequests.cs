using System.Globalization;
using Ferret.Coordinator.Experiments;
using Ferret.Coordinator.Persistence;
using Ferret.Core.Algorithms;
using Ferret.Core.Privacy;

namespace Ferret.Coordinator.Privacy;

/// <summary><c>secureAggregation</c> of an experiment request: the coordinator sees only sums of at least <c>threshold</c> clients' gammas.</summary>
public sealed record SecureAggregationRequest(int Threshold, int? Neighbours = null, double? MaxAbsGamma = null, int? KeysSeconds = null, int? SharesSeconds = null,
    int? UnmaskSeconds = null);

/// <summary><c>adaptiveClipping</c> of a DP request (Andrew et al. 2021).</summary>
public sealed record AdaptiveClippingRequest(double? TargetQuantile = null, double? LearningRate = null, double? CountNoise = null);

/// <summary><c>differentialPrivacy</c> of an experiment request; <c>noise</c> is <c>central</c> (default) or <c>distributed</c>.</summary>
public sealed record DifferentialPrivacyRequest(double NoiseMultiplier, double ClipNorm, double? Delta = null, string? Noise = null, AdaptiveClippingRequest? AdaptiveClipping = null);

/// <summary>An experiment's privacy as the status view shows it, with the epsilon spent so far.</summary>
public sealed record PrivacyView(
    int? Threshold, int? Neighbours, double? NoiseMultiplier, double? ClipNorm, double? CurrentClipNorm, double? Delta, string? Noise, bool AdaptiveClipping,
    double? EpsilonSpent, int AccountedRounds);

/// <summary>Maps the REST shapes of privacy onto the descriptor's settings and back.</summary>
public static class PrivacyRequests
{
    /// <summary>The settings a request asks for (null when it asks for none); errors name the JSON field.</summary>
    public static PrivacySettings? Settings(SecureAggregationRequest? secure, DifferentialPrivacyRequest? dp, Dictionary<string, string[]> errors)
    {
        ArgumentNullException.ThrowIfNull(errors);
        if (secure is null && dp is null)
            return null;
        var settings = new PrivacySettings();
        if (secure is not null)
        {
            var defaults = new SecureAggregationSettings();
            settings.SecureAggregation = new SecureAggregationSettings
            {
                Threshold = secure.Threshold,
                Neighbours = secure.Neighbours ?? 0,
                MaxAbsGamma = secure.MaxAbsGamma ?? defaults.MaxAbsGamma,
                KeysSeconds = secure.KeysSeconds ?? defaults.KeysSeconds,
                SharesSeconds = secure.SharesSeconds ?? defaults.SharesSeconds,
                UnmaskSeconds = secure.UnmaskSeconds ?? defaults.UnmaskSeconds,
            };
            Check(() => settings.SecureAggregation.Validate(), "secureAggregation", errors);
        }
        if (dp is not null)
        {
            NoisePlacement placement = NoisePlacement.Central;
            if (dp.Noise is { } noise && !Enum.TryParse(noise, ignoreCase: true, out placement))
                errors["differentialPrivacy.noise"] = [$"'{noise}' is not central or distributed."];
            settings.DifferentialPrivacy = new DifferentialPrivacySettings
            {
                NoiseMultiplier = dp.NoiseMultiplier,
                ClipNorm = dp.ClipNorm,
                Delta = dp.Delta ?? 1e-5,
                Placement = placement,
                AdaptiveClipping = dp.AdaptiveClipping is { } a
                    ? new AdaptiveClippingSettings { TargetQuantile = a.TargetQuantile ?? 0.5, LearningRate = a.LearningRate ?? 0.2, CountNoise = a.CountNoise }
                    : null,
            };
            Check(() => settings.DifferentialPrivacy.Validate(), "differentialPrivacy", errors);
        }
        return settings;
    }

    /// <summary>The status view's privacy line: settings, the clip norm now and the epsilon spent by the completed rounds (when the view has them).</summary>
    public static PrivacyView? View(ExperimentDescriptor descriptor, IReadOnlyList<RoundView>? rounds)
    {
        ArgumentNullException.ThrowIfNull(descriptor);
        if (descriptor.Privacy is not { IsEmpty: false } p)
            return null;
        var dp = p.DifferentialPrivacy;
        var lastPrivate = rounds?.LastOrDefault(r => r.Metrics?.Privacy is not null)?.Metrics!.Privacy;
        return new PrivacyView(p.SecureAggregation?.Threshold, p.SecureAggregation?.Neighbours, dp?.NoiseMultiplier, dp?.ClipNorm,
            lastPrivate?.NextClipNorm ?? dp?.ClipNorm, dp?.Delta, dp?.Placement.ToString().ToLower(CultureInfo.InvariantCulture),
            dp?.AdaptiveClipping is not null, dp is null ? null : lastPrivate?.Epsilon ?? 0, rounds?.Count(r => r.Metrics?.Privacy?.Epsilon is not null) ?? 0);
    }

    private static void Check(Action validate, string field, Dictionary<string, string[]> errors)
    {
        try
        {
            validate();
        }
        catch (ArgumentException e)
        {
            errors[field] = [e.Message];
        }
    }
}
