using System.Globalization;
using Ferret.Core.Algorithms;

namespace Ferret.Cli.Reports;

/// <summary>The effective hyper-parameters of a run in one line, the way the banner of simulate and demo shows them.</summary>
internal static class SettingsLine
{
    public static string Of(string algorithm, AlgorithmSettings s)
    {
        ArgumentNullException.ThrowIfNull(s);
        var parts = new List<string> { algorithm, $"T = {s.LocalSteps}" };
        bool firstOrder = algorithm is FederatedAlgorithms.Ferret or FederatedAlgorithms.FedAvg;
        if (firstOrder)
            parts.Add($"micro-batches {s.MicroBatches}");
        parts.Add(string.Create(CultureInfo.InvariantCulture, $"eta = {s.LocalLearningRate:G4}"));
        if (algorithm is FederatedAlgorithms.Ferret or FederatedAlgorithms.FedKSeed)
            parts.Add($"K = {s.CandidateSeeds}");
        if (algorithm == FederatedAlgorithms.Ferret)
            parts.Add(string.Create(CultureInfo.InvariantCulture, $"slr = {s.ServerLearningRate:G4} ({s.ServerSchedule.ToString().ToLowerInvariant()})"));
        if (!firstOrder)
            parts.Add(string.Create(CultureInfo.InvariantCulture, $"eps = {s.ZerothOrderEpsilon:G4}"));
        return string.Join(", ", parts);
    }
}
