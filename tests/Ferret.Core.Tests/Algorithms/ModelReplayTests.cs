using Ferret.Core.Algorithms;
using Ferret.Core.Packets;
using Ferret.Core.Parameters;

namespace Ferret.Core.Tests.Algorithms;

/// <summary>The global model rebuilt from the starting parameters and the log's updates, as the CLI, the edge client and the coordinator do.</summary>
public class ModelReplayTests
{
    private static (AlgorithmTests.Federation F, List<GlobalUpdate> Updates, List<string> Fingerprints) Run(string algorithm, int rounds)
    {
        var f = new AlgorithmTests.Federation(algorithm, s => AlgorithmTests.Tune(algorithm, s), rounds);
        f.Descriptor.ArtifactFingerprint = ModelFingerprint.Compute(f.Global);
        var updates = new List<GlobalUpdate>();
        var fingerprints = new List<string>();
        for (int r = 1; r <= rounds; r++)
        {
            updates.Add(Wire.Deserialize<GlobalUpdate>(Wire.Serialize(f.Round(r))));
            fingerprints.Add(ModelFingerprint.Compute(f.Global));
        }
        return (f, updates, fingerprints);
    }

    [Theory]
    [InlineData(FederatedAlgorithms.Ferret)]
    [InlineData(FederatedAlgorithms.FedAvg)]
    [InlineData(FederatedAlgorithms.FedKSeed)]
    public void Replaying_the_log_gives_the_participants_model_at_every_round(string algorithm)
    {
        var (f, updates, fingerprints) = Run(algorithm, rounds: 3);
        var initial = new float[f.Global.Length];
        for (int r = 1; r <= 3; r++)
        {
            var model = ModelReplay.Replay(f.Descriptor, f.Blocks, initial, updates, untilRound: r);
            Assert.True(model.Fingerprint == fingerprints[r - 1], $"{algorithm} round {r}: replay {model.Fingerprint} vs participants {fingerprints[r - 1]}");
            Assert.True(model.Round == r && model.UpdatesApplied == r, $"round {model.Round}, {model.UpdatesApplied} updates applied; expected {r} and {r}");
            Assert.True(model.Fingerprint == ModelFingerprint.Compute(model.Parameters), "the fingerprint is of the parameters returned");
        }
        var all = ModelReplay.Replay(f.Descriptor, f.Blocks, initial, updates);
        Assert.True(all.Fingerprint == fingerprints[^1] && all.Round == 3, $"the whole log replays to round 3 ({all.Round})");
        Assert.True(initial.All(x => x == 0), "the starting parameters are not modified");
        Assert.True(ModelReplay.CheckAgainstReports(all.Fingerprint, 3, [fingerprints[^1], fingerprints[^1]]) == 2, "two agreeing reports are counted");
    }

    [Fact]
    public void An_abandoned_round_leaves_the_model_where_the_previous_round_left_it()
    {
        var (f, updates, fingerprints) = Run(FederatedAlgorithms.FedAvg, rounds: 3);
        var initial = new float[f.Global.Length];
        // Round 2 abandoned: the log holds updates of rounds 1 and 3 (renumbered so 3 builds on 1 as the engine does).
        var gap = new List<GlobalUpdate> { updates[0], updates[1] };
        gap[1].Round = 3;
        var atTwo = ModelReplay.Replay(f.Descriptor, f.Blocks, initial, gap, untilRound: 2);
        Assert.True(atTwo.Fingerprint == fingerprints[0] && atTwo.UpdatesApplied == 1 && atTwo.Round == 2 && atTwo.LastUpdateRound == 1, "round 2 (abandoned) holds round 1's model");
        Assert.True(ModelReplay.Replay(f.Descriptor, f.Blocks, initial, gap, untilRound: 0).Fingerprint == ModelFingerprint.Compute(initial), "round 0 is the start");
    }

    [Fact]
    public void A_wrong_start_a_foreign_update_a_disordered_log_or_a_disagreeing_report_is_refused_with_a_reason()
    {
        var (f, updates, _) = Run(FederatedAlgorithms.FedAvg, rounds: 2);
        var initial = new float[f.Global.Length];
        var other = (float[])initial.Clone();
        other[0] = 1;
        Assert.Contains("starts from", Assert.Throws<InvalidDataException>(() => ModelReplay.Replay(f.Descriptor, f.Blocks, other, updates)).Message);
        Assert.Contains("out of order", Assert.Throws<InvalidDataException>(() => ModelReplay.Replay(f.Descriptor, f.Blocks, initial, [updates[1], updates[0]])).Message);
        updates[0].ExperimentId = "someone-else";
        Assert.Contains("someone-else", Assert.Throws<InvalidDataException>(() => ModelReplay.Replay(f.Descriptor, f.Blocks, initial, updates)).Message);
        Assert.Contains("reported bbbb", Assert.Throws<InvalidDataException>(() => ModelReplay.CheckAgainstReports("aaaa", 2, ["aaaa", "bbbb"])).Message);
        Assert.True(ModelReplay.CheckAgainstReports("aaaa", 2, []) == 0, "no reports: nothing to check, zero agree");
    }
}
