using Ferret.Core.Packets;
using Ferret.Core.Parameters;
using Ferret.Core.Projection;

namespace Ferret.Core.Algorithms;

/// <summary>
/// The global model at a round: its parameters, the round it stands at, the round of the last update applied
/// (earlier when later rounds were abandoned; what participants reported their fingerprints for), and its fingerprint.
/// </summary>
public sealed record ReplayedModel(float[] Parameters, int Round, int LastUpdateRound, int UpdatesApplied, string Fingerprint);

/// <summary>
/// The global model as a pure function of the starting parameters and the round log's global updates
/// (architecture.md, "State and durability"): the same updates applied in the same order give every
/// participant, the coordinator and an offline replay the same model, bit for bit.
/// </summary>
public static class ModelReplay
{
    /// <summary>
    /// Applies <paramref name="updates"/> (ascending rounds, all of this experiment) to a copy of
    /// <paramref name="initial"/>, up to and including <paramref name="untilRound"/> (all when null).
    /// The starting parameters must hash to the experiment's artifact fingerprint.
    /// </summary>
    public static ReplayedModel Replay(ExperimentDescriptor experiment, ParameterBlocks blocks, ReadOnlySpan<float> initial, IEnumerable<GlobalUpdate> updates,
        int? untilRound = null, KernelOptions? kernels = null)
    {
        ArgumentNullException.ThrowIfNull(experiment);
        ArgumentNullException.ThrowIfNull(blocks);
        ArgumentNullException.ThrowIfNull(updates);
        if (untilRound is < 0)
            throw new ArgumentException($"Round {untilRound} is negative.", nameof(untilRound));
        if (initial.Length != experiment.ParameterCount)
            throw new InvalidDataException($"The starting model has {initial.Length:N0} parameters; experiment '{experiment.Id}' has {experiment.ParameterCount:N0}.");
        string start = ModelFingerprint.Compute(initial);
        if (start != experiment.ArtifactFingerprint)
            throw new InvalidDataException($"The starting model has fingerprint {start}; experiment '{experiment.Id}' starts from {experiment.ArtifactFingerprint}.");
        var algorithm = FederatedAlgorithms.Create(experiment, blocks, kernels);
        var parameters = initial.ToArray();
        int round = 0, applied = 0;
        foreach (var update in updates)
        {
            if (update.ExperimentId != experiment.Id)
                throw new InvalidDataException($"A global update of experiment '{update.ExperimentId}' is in the log of '{experiment.Id}'.");
            if (update.Round <= round)
                throw new InvalidDataException($"Global update of round {update.Round} follows round {round}: the log is out of order.");
            if (update.Round > experiment.Rounds)
                throw new InvalidDataException($"Global update of round {update.Round} is past the experiment's {experiment.Rounds} rounds.");
            if (update.Round > untilRound)
                break;
            algorithm.Apply(update, parameters);
            round = update.Round;
            applied++;
        }
        return new ReplayedModel(parameters, untilRound ?? round, round, applied, ModelFingerprint.Compute(parameters));
    }

    /// <summary>
    /// Checks a replayed fingerprint against those participants reported for the same round; a disagreement
    /// is an error naming both. Returns how many reports agree (0 when nobody reported that round).
    /// </summary>
    public static int CheckAgainstReports(string fingerprint, int round, IEnumerable<string> reported)
    {
        ArgumentNullException.ThrowIfNull(reported);
        int agree = 0;
        foreach (var r in reported)
        {
            if (r != fingerprint)
                throw new InvalidDataException($"The replayed model of round {round} has fingerprint {fingerprint}, but a participant reported {r}.");
            agree++;
        }
        return agree;
    }
}
