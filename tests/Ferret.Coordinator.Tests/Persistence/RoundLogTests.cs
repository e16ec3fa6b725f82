using Ferret.Coordinator.Persistence;
using Microsoft.Data.Sqlite;

namespace Ferret.Coordinator.Tests.Persistence;

public sealed class RoundLogTests : IDisposable
{
    private static readonly DateTimeOffset T0 = new(2026, 11, 24, 12, 0, 0, TimeSpan.Zero);
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    private RoundLog NewLog(out string path)
    {
        path = _dir.File("rounds.db");
        return new RoundLog(path);
    }

    private static ExperimentRecord Experiment(string id = "exp-1", int rounds = 3) =>
        new(id, "demo", "ferret", [1, 2, 3], ExperimentState.Created, rounds, "abc123", T0, null);

    private static void Enrol(RoundLog log, string clientId)
    {
        var enrolment = "enrol-" + clientId;
        log.AddEnrolmentToken(enrolment, clientId, T0, T0.AddHours(1));
        Assert.True(log.RedeemEnrolmentToken(enrolment, new ClientRecord(clientId, clientId, T0, null, false), "token-" + clientId, T0));
    }

    [Fact]
    public void A_completed_round_survives_reopening_the_database()
    {
        var log = NewLog(out var path);
        log.AddExperiment(Experiment());
        Enrol(log, "a");
        Enrol(log, "b");
        log.OpenRound("exp-1", 1, T0, T0.AddMinutes(5), ["a", "b"]);
        Assert.Equal(PacketOutcome.Accepted, log.RecordPacket("exp-1", 1, "a", [9, 9], "h", 2.5, T0.AddSeconds(3)));
        log.CompleteRound("exp-1", 1, [7, 7, 7], [4], "{}", T0.AddMinutes(1));

        SqliteConnection.ClearAllPools();
        var reopened = new RoundLog(path);
        var round = reopened.GetRound("exp-1", 1)!;
        Assert.Equal(RoundState.Completed, round.State);
        Assert.Equal(new byte[] { 7, 7, 7 }, reopened.GetGlobalUpdates("exp-1", 0).Single().GlobalUpdate);
        Assert.Equal(1, round.Aggregated);
        Assert.Equal(1, round.Missing);
        Assert.Equal(new byte[] { 4 }, reopened.GetServerState("exp-1"));
        Assert.Equal(ExperimentState.Running, reopened.GetExperiment("exp-1")!.State);
        var assignments = reopened.GetAssignments("exp-1", 1);
        Assert.Equal(AssignmentState.Received, assignments.Single(a => a.ClientId == "a").State);
        Assert.Equal(AssignmentState.Missed, assignments.Single(a => a.ClientId == "b").State);
    }

    [Fact]
    public void One_packet_per_client_per_round_and_only_from_assigned_clients()
    {
        var log = NewLog(out _);
        log.AddExperiment(Experiment());
        Enrol(log, "a");
        Enrol(log, "c");
        log.OpenRound("exp-1", 1, T0, T0.AddMinutes(5), ["a"]);
        Assert.Equal(PacketOutcome.Accepted, log.RecordPacket("exp-1", 1, "a", [1], "h1", null, T0));
        Assert.Equal(PacketOutcome.Duplicate, log.RecordPacket("exp-1", 1, "a", [2], "h2", null, T0));
        Assert.Equal(PacketOutcome.NotAssigned, log.RecordPacket("exp-1", 1, "c", [3], "h3", null, T0));
        Assert.Equal(PacketOutcome.NotAssigned, log.RecordPacket("exp-1", 2, "a", [3], "h3", null, T0));
        // The first packet is the one kept.
        Assert.Equal(new byte[] { 1 }, log.GetPackets("exp-1", 1).Single().Packet);
        log.CompleteRound("exp-1", 1, [0], null, null, T0);
        Assert.Equal(PacketOutcome.RoundClosed, log.RecordPacket("exp-1", 1, "a", [4], "h4", null, T0));
    }

    [Fact]
    public void Progress_names_the_open_round_the_last_round_and_the_last_completed_one()
    {
        var log = NewLog(out _);
        log.AddExperiment(Experiment());
        Enrol(log, "a");
        Assert.Equal(new RoundProgress(null, 0, 0), log.GetProgress("exp-1"));
        log.OpenRound("exp-1", 1, T0, T0.AddMinutes(5), ["a"]);
        Assert.Equal((1, 1, 0), (log.GetProgress("exp-1").Open!.Round, log.GetProgress("exp-1").LastRound, log.GetProgress("exp-1").LastCompleted));
        log.CompleteRound("exp-1", 1, [1, 2, 3], null, null, T0.AddMinutes(1));
        log.OpenRound("exp-1", 2, T0, T0.AddMinutes(5), ["a"]);
        log.AbandonRound("exp-1", 2, "nobody answered", T0.AddMinutes(6));
        var progress = log.GetProgress("exp-1");
        Assert.Null(progress.Open);
        Assert.Equal((2, 1), (progress.LastRound, progress.LastCompleted));
        Assert.Equal(new RoundProgress(null, 0, 0), log.GetProgress("exp-other"));
    }

    [Fact]
    public void The_experiment_completes_with_its_last_round()
    {
        var log = NewLog(out _);
        log.AddExperiment(Experiment(rounds: 1));
        Enrol(log, "a");
        log.OpenRound("exp-1", 1, T0, T0.AddMinutes(5), ["a"]);
        log.CompleteRound("exp-1", 1, [0], null, null, T0.AddMinutes(2));
        var e = log.GetExperiment("exp-1")!;
        Assert.Equal(ExperimentState.Completed, e.State);
        Assert.Equal(T0.AddMinutes(2), e.EndedUtc);
    }

    [Fact]
    public void A_round_cannot_complete_twice()
    {
        var log = NewLog(out _);
        log.AddExperiment(Experiment());
        Enrol(log, "a");
        log.OpenRound("exp-1", 1, T0, T0.AddMinutes(5), ["a"]);
        log.CompleteRound("exp-1", 1, [1], null, null, T0);
        Assert.Throws<InvalidOperationException>(() => log.CompleteRound("exp-1", 1, [2], null, null, T0));
        Assert.Equal(new byte[] { 1 }, log.GetRound("exp-1", 1)!.GlobalUpdate);
    }

    [Fact]
    public void Catch_up_returns_completed_updates_after_a_round_in_order_and_skips_abandoned_ones()
    {
        var log = NewLog(out _);
        log.AddExperiment(Experiment(rounds: 5));
        Enrol(log, "a");
        for (int r = 1; r <= 4; r++)
        {
            log.OpenRound("exp-1", r, T0, T0.AddMinutes(5), ["a"]);
            if (r == 3)
                log.AbandonRound("exp-1", r, "nobody answered", T0);
            else
                log.CompleteRound("exp-1", r, [(byte)r], null, null, T0);
        }
        Assert.Equal([2, 4], log.GetGlobalUpdates("exp-1", 1).Select(u => u.Round));
        Assert.Equal(RoundState.Abandoned, log.GetRound("exp-1", 3)!.State);
    }

    [Fact]
    public void Enrolment_tokens_are_single_use_and_expire()
    {
        var log = NewLog(out _);
        log.AddEnrolmentToken("e1", "lab", T0, T0.AddMinutes(10));
        Assert.True(log.RedeemEnrolmentToken("e1", new ClientRecord("c1", "phone", T0, null, false), "t1", T0.AddMinutes(1)));
        Assert.False(log.RedeemEnrolmentToken("e1", new ClientRecord("c2", "phone", T0, null, false), "t2", T0.AddMinutes(1)));
        log.AddEnrolmentToken("e2", "lab", T0, T0.AddMinutes(10));
        Assert.False(log.RedeemEnrolmentToken("e2", new ClientRecord("c3", "phone", T0, null, false), "t3", T0.AddMinutes(11)));
        Assert.False(log.RedeemEnrolmentToken("nope", new ClientRecord("c4", "phone", T0, null, false), "t4", T0));
        Assert.Equal("c1", log.FindClientByToken("t1")!.Id);
        Assert.Null(log.FindClientByToken("t2"));
    }

    [Fact]
    public void A_failed_client_is_recorded_and_cannot_answer_afterwards()
    {
        var log = NewLog(out _);
        log.AddExperiment(Experiment());
        Enrol(log, "a");
        log.OpenRound("exp-1", 1, T0, T0.AddMinutes(5), ["a"]);
        Assert.True(log.MarkAssignmentFailed("exp-1", 1, "a", "disconnected"));
        Assert.Equal(PacketOutcome.Duplicate, log.RecordPacket("exp-1", 1, "a", [1], "h", null, T0));
        var a = log.GetAssignments("exp-1", 1).Single();
        Assert.Equal(AssignmentState.Failed, a.State);
        Assert.Equal("disconnected", a.Reason);
    }

    [Fact]
    public void Rejections_are_counted_per_experiment()
    {
        var log = NewLog(out _);
        log.RecordRejection("exp-1", 1, "a", "seed index 900 outside [0, 200)", 42, T0);
        log.RecordRejection(null, null, null, "unauthenticated", 0, T0);
        Assert.Equal(2, log.CountRejections());
        Assert.Equal(1, log.CountRejections("exp-1"));
    }

    [Fact]
    public void A_database_from_a_newer_coordinator_is_refused_with_its_path()
    {
        var path = _dir.File("future.db");
        using (var c = new SqliteConnection($"Data Source={path}"))
        {
            c.Open();
            using var cmd = c.CreateCommand();
            cmd.CommandText = "PRAGMA user_version = 99;";
            cmd.ExecuteNonQuery();
        }
        SqliteConnection.ClearAllPools();
        var e = Assert.Throws<InvalidDataException>(() => new RoundLog(path));
        Assert.Contains(path, e.Message);
    }

    [Fact]
    public void Fingerprints_keep_the_first_report_of_each_client()
    {
        var log = NewLog(out _);
        log.RecordFingerprint(new FingerprintRecord("exp-1", 1, "a", "f1", T0));
        log.RecordFingerprint(new FingerprintRecord("exp-1", 1, "a", "f2", T0));
        log.RecordFingerprint(new FingerprintRecord("exp-1", 1, "b", "f1", T0));
        var fps = log.GetFingerprints("exp-1", 1);
        Assert.Equal(["f1", "f1"], fps.Select(f => f.Fingerprint));
    }

    [Fact]
    public void A_version_1_round_log_gains_the_dashboard_tables_and_keeps_its_experiments()
    {
        var log = NewLog(out var path);
        log.AddExperiment(Experiment());
        // Back to version 1 as an older coordinator left it: no access keys, no sign-in codes.
        using (var c = new SqliteConnection($"Data Source={path}"))
        {
            c.Open();
            using var cmd = c.CreateCommand();
            cmd.CommandText = "DROP TABLE sign_in_codes; DROP TABLE access_keys; DROP INDEX rejections_by_experiment; PRAGMA user_version = 1;";
            cmd.ExecuteNonQuery();
        }
        SqliteConnection.ClearAllPools();
        var upgraded = new RoundLog(path);
        Assert.Equal("demo", upgraded.GetExperiment("exp-1")?.Name);
        upgraded.AddAccessKey(new AccessKeyRecord("key-1", "screen", "observer", T0, null, false), "digest-1");
        Assert.Equal("screen", upgraded.FindAccessKey("digest-1")?.Label);
    }

    [Fact]
    public void A_sign_in_code_is_spent_once_and_not_after_it_expires()
    {
        var log = NewLog(out _);
        log.AddSignInCode("code-1", "admin", "demo", T0, T0.AddMinutes(30));
        log.AddSignInCode("code-2", "observer", "late", T0, T0.AddMinutes(30));
        int minted = 0;
        (AccessKeyRecord, string) Mint(string role, string label) => (new AccessKeyRecord($"key-{++minted}", label, role, T0, null, false), $"digest-{minted}");
        var key = log.RedeemSignInCode("code-1", T0.AddMinutes(1), Mint);
        Assert.Equal(("admin", "demo"), (key?.Role, key?.Label));
        Assert.Null(log.RedeemSignInCode("code-1", T0.AddMinutes(2), Mint));
        Assert.Null(log.RedeemSignInCode("code-2", T0.AddMinutes(30), Mint));
        Assert.Null(log.RedeemSignInCode("code-3", T0, Mint));
        Assert.Equal(1, minted);
        Assert.Equal(["key-1"], log.ListAccessKeys().Select(k => k.Id));
    }
}
