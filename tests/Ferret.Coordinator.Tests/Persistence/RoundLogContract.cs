using Ferret.Coordinator.Persistence;
using Ferret.Coordinator.Persistence.Sql;
using Ferret.Tests;
using Microsoft.Data.Sqlite;
using Npgsql;

namespace Ferret.Coordinator.Tests.Persistence;

/// <summary>
/// What every round-log store promises, run against each of them (SQLite here, PostgreSQL below): the same
/// durability rule, one packet per client per round, compare-and-set round transitions.
/// </summary>
public abstract partial class RoundLogContract : IDisposable
{
    private static readonly DateTimeOffset T0 = new(2026, 11, 24, 12, 0, 0, TimeSpan.Zero);
    private readonly List<SqlDatabase> _opened = [];

    /// <summary>A fresh, empty store of this kind.</summary>
    protected abstract SqlDatabase CreateDatabase();

    /// <summary>The same store opened again, as a restarted coordinator would.</summary>
    protected abstract SqlDatabase ReopenDatabase();

    /// <summary>Marks the store as written by a coordinator with a newer schema.</summary>
    protected abstract void SetSchemaVersion(int version);

    public virtual void Dispose()
    {
        foreach (var db in _opened)
            db.Dispose();
        GC.SuppressFinalize(this);
    }

    private (IRoundLog Log, IClientRegistry Clients) NewLog() => Wrap(CreateDatabase());

    private (IRoundLog Log, IClientRegistry Clients) Wrap(SqlDatabase db)
    {
        _opened.Add(db);
        return (new SqlRoundLog(db), new SqlClientRegistry(db));
    }

    private static ExperimentRecord Experiment(string id = "exp-1", int rounds = 3) =>
        new(id, "demo", "ferret", [1, 2, 3], ExperimentState.Created, rounds, "abc123", T0, null);

    private static void Enrol(IClientRegistry clients, string clientId)
    {
        var enrolment = "enrol-" + clientId;
        clients.AddEnrolmentToken(enrolment, clientId, T0, T0.AddHours(1));
        Assert.True(clients.RedeemEnrolmentToken(enrolment, new ClientRecord(clientId, clientId, T0, null, false), "token-" + clientId, T0),
            $"enrolment of {clientId} should succeed");
    }

    /// <summary>An experiment with enrolled clients and round 1 open for them.</summary>
    private (IRoundLog Log, IClientRegistry Clients) WithOpenRound(int rounds, params string[] clients)
    {
        var (log, registry) = NewLog();
        log.AddExperiment(Experiment(rounds: rounds));
        foreach (var c in clients)
            Enrol(registry, c);
        log.OpenRound("exp-1", 1, T0, T0.AddMinutes(5), clients);
        return (log, registry);
    }

    [SkippableFact]
    public void A_completed_round_survives_reopening_the_database()
    {
        var (log, _) = WithOpenRound(3, "a", "b");
        Assert.Equal(PacketOutcome.Accepted, log.RecordPacket("exp-1", 1, "a", [9, 9], "h", 2.5, T0.AddSeconds(3)));
        log.CompleteRound("exp-1", 1, [7, 7, 7], [4], "{}", T0.AddMinutes(1), ["a"]);

        SqliteConnection.ClearAllPools();
        var (reopened, _) = Wrap(ReopenDatabase());
        var round = reopened.GetRound("exp-1", 1)!;
        Assert.Equal(RoundState.Completed, round.State);
        Assert.Equal(new byte[] { 7, 7, 7 }, reopened.GetGlobalUpdates("exp-1", 0).Single().GlobalUpdate);
        Assert.Equal(1, round.Aggregated);
        Assert.Equal(1, round.Missing);
        Assert.Equal(T0.AddMinutes(1), round.ClosedUtc);
        Assert.Equal(new byte[] { 4 }, reopened.GetServerState("exp-1"));
        Assert.Equal(ExperimentState.Running, reopened.GetExperiment("exp-1")!.State);
        var assignments = reopened.GetAssignments("exp-1", 1);
        Assert.Equal(AssignmentState.Received, assignments.Single(a => a.ClientId == "a").State);
        Assert.Equal(2.5, assignments.Single(a => a.ClientId == "a").TrainLoss);
        Assert.Equal(T0.AddSeconds(3), assignments.Single(a => a.ClientId == "a").ReceivedUtc);
        Assert.Equal(AssignmentState.Missed, assignments.Single(a => a.ClientId == "b").State);
    }

    [SkippableFact]
    public void One_packet_per_client_per_round_and_only_from_assigned_clients()
    {
        var (log, clients) = WithOpenRound(3, "a");
        Enrol(clients, "c");
        Assert.Equal(PacketOutcome.Accepted, log.RecordPacket("exp-1", 1, "a", [1], "h1", null, T0));
        Assert.Equal(PacketOutcome.Duplicate, log.RecordPacket("exp-1", 1, "a", [2], "h2", null, T0));
        Assert.Equal(PacketOutcome.NotAssigned, log.RecordPacket("exp-1", 1, "c", [3], "h3", null, T0));
        Assert.Equal(PacketOutcome.NotAssigned, log.RecordPacket("exp-1", 2, "a", [3], "h3", null, T0));
        // The first packet is the one kept.
        Assert.Equal(new byte[] { 1 }, log.GetPackets("exp-1", 1).Single().Packet);
        log.CompleteRound("exp-1", 1, [0], null, null, T0);
        Assert.Equal(PacketOutcome.RoundClosed, log.RecordPacket("exp-1", 1, "a", [4], "h4", null, T0));
    }

    [SkippableFact]
    public void The_door_reads_where_a_client_stands_and_a_stored_packet_can_be_turned_away_before_the_round_completes()
    {
        var (log, clients) = WithOpenRound(3, "a", "b");
        Enrol(clients, "c");
        Assert.Equal((RoundState.Open, T0.AddMinutes(5), (AssignmentState?)AssignmentState.Assigned), log.GetSubmissionState("exp-1", 1, "a"));
        Assert.Null(log.GetSubmissionState("exp-1", 1, "c")!.Value.Assignment);
        Assert.Null(log.GetSubmissionState("exp-1", 2, "a"));
        log.RecordPacket("exp-1", 1, "a", [1], "h1", null, T0);
        log.RecordPacket("exp-1", 1, "b", [2], "h2", null, T0);
        Assert.Equal(AssignmentState.Received, log.GetSubmissionState("exp-1", 1, "a")!.Value.Assignment);

        Assert.True(log.RejectStoredPacket("exp-1", 1, "b", "stored packet failed the checks"), "a received packet can be turned away");
        Assert.False(log.RejectStoredPacket("exp-1", 1, "b", "again"), "only once");
        Assert.Equal(["a"], log.GetPackets("exp-1", 1).Select(p => p.ClientId));
        var b = log.GetAssignments("exp-1", 1).Single(x => x.ClientId == "b");
        Assert.Equal((AssignmentState.Rejected, "stored packet failed the checks"), (b.State, b.Reason));
        // The completion takes exactly the packets that passed; the turned-away one stays rejected, not missed.
        log.CompleteRound("exp-1", 1, [0], null, null, T0, ["a"]);
        Assert.Equal(AssignmentState.Rejected, log.GetAssignments("exp-1", 1).Single(x => x.ClientId == "b").State);
        Assert.False(log.RejectStoredPacket("exp-1", 1, "a", "late"), "a completed round's packets are final");
        Assert.Equal(RoundState.Completed, log.GetSubmissionState("exp-1", 1, "a")!.Value.Round);
    }

    [SkippableFact]
    public void Copies_of_a_packet_racing_in_on_many_connections_are_stored_once()
    {
        var (log, _) = WithOpenRound(3, "a", "b");
        var outcomes = new PacketOutcome[16];
        Parallel.For(0, outcomes.Length, new ParallelOptions { MaxDegreeOfParallelism = 8 },
            i => outcomes[i] = log.RecordPacket("exp-1", 1, "a", [(byte)i], "h" + i, null, T0));
        Assert.True(outcomes.Count(o => o == PacketOutcome.Accepted) == 1, $"exactly one copy should be accepted: {string.Join(", ", outcomes)}");
        Assert.All(outcomes.Where(o => o != PacketOutcome.Accepted), o => Assert.Equal(PacketOutcome.Duplicate, o));
        var stored = log.GetPackets("exp-1", 1).Single();
        Assert.Equal(outcomes.ToList().IndexOf(PacketOutcome.Accepted), stored.Packet[0]);
    }

    [SkippableFact]
    public void A_packet_recorded_after_the_round_was_read_for_aggregation_refuses_the_completion()
    {
        var (log, _) = WithOpenRound(3, "a", "b");
        log.RecordPacket("exp-1", 1, "a", [1], "h1", null, T0);
        var read = log.GetPackets("exp-1", 1).Select(p => p.ClientId).ToList();
        log.RecordPacket("exp-1", 1, "b", [2], "h2", null, T0); // arrives while the aggregate is being computed
        var e = Assert.Throws<InvalidOperationException>(() => log.CompleteRound("exp-1", 1, [9], [1], null, T0, read));
        Assert.Contains("aggregate again", e.Message);
        Assert.Equal(RoundState.Open, log.GetRound("exp-1", 1)!.State);
        Assert.Null(log.GetServerState("exp-1"));
        log.CompleteRound("exp-1", 1, [9], [1], null, T0, ["a", "b"]);
        Assert.Equal(2, log.GetRound("exp-1", 1)!.Aggregated);
    }

    [SkippableFact]
    public void Of_two_instances_completing_the_same_round_exactly_one_succeeds()
    {
        var (log, _) = WithOpenRound(3, "a");
        log.RecordPacket("exp-1", 1, "a", [1], "h1", null, T0);
        var results = new Exception?[2];
        Parallel.For(0, 2, i => results[i] = Record.Exception(() => log.CompleteRound("exp-1", 1, [(byte)(10 + i)], null, null, T0, ["a"])));
        Assert.True(results.Count(r => r is null) == 1, $"exactly one completion should succeed: {results[0]?.Message} / {results[1]?.Message}");
        Assert.IsType<InvalidOperationException>(results.Single(r => r is not null));
        Assert.Equal(10 + Array.FindIndex(results, r => r is null), log.GetRound("exp-1", 1)!.GlobalUpdate![0]);
        Assert.Throws<InvalidOperationException>(() => log.OpenRound("exp-1", 1, T0, T0.AddMinutes(5), ["a"]));
    }

    [SkippableFact]
    public void Progress_names_the_open_round_the_last_round_and_the_last_completed_one()
    {
        var (log, clients) = NewLog();
        log.AddExperiment(Experiment());
        Enrol(clients, "a");
        Assert.Equal(new RoundProgress(null, 0, 0), log.GetProgress("exp-1"));
        log.OpenRound("exp-1", 1, T0, T0.AddMinutes(5), ["a"]);
        Assert.Equal((1, 1, 0), (log.GetProgress("exp-1").Open!.Round, log.GetProgress("exp-1").LastRound, log.GetProgress("exp-1").LastCompleted));
        Assert.Null(log.GetProgress("exp-1").Open!.GlobalUpdate);
        log.CompleteRound("exp-1", 1, [1, 2, 3], null, null, T0.AddMinutes(1));
        log.OpenRound("exp-1", 2, T0, T0.AddMinutes(5), ["a"]);
        log.AbandonRound("exp-1", 2, "nobody answered", T0.AddMinutes(6));
        var progress = log.GetProgress("exp-1");
        Assert.Null(progress.Open);
        Assert.Equal((2, 1), (progress.LastRound, progress.LastCompleted));
        Assert.Equal(new RoundProgress(null, 0, 0), log.GetProgress("exp-other"));
    }

    [SkippableFact]
    public void The_experiment_completes_with_its_last_round()
    {
        var (log, _) = WithOpenRound(1, "a");
        log.CompleteRound("exp-1", 1, [0], null, null, T0.AddMinutes(2));
        var e = log.GetExperiment("exp-1")!;
        Assert.Equal(ExperimentState.Completed, e.State);
        Assert.Equal(T0.AddMinutes(2), e.EndedUtc);
    }

    [SkippableFact]
    public void A_round_cannot_complete_twice_nor_be_abandoned_after()
    {
        var (log, _) = WithOpenRound(3, "a");
        log.CompleteRound("exp-1", 1, [1], null, null, T0);
        Assert.Throws<InvalidOperationException>(() => log.CompleteRound("exp-1", 1, [2], null, null, T0));
        log.AbandonRound("exp-1", 1, "too late", T0);
        Assert.Equal(RoundState.Completed, log.GetRound("exp-1", 1)!.State);
        Assert.Equal(new byte[] { 1 }, log.GetRound("exp-1", 1)!.GlobalUpdate);
    }

    [SkippableFact]
    public void Catch_up_returns_completed_updates_after_a_round_in_order_and_skips_abandoned_ones()
    {
        var (log, clients) = NewLog();
        log.AddExperiment(Experiment(rounds: 5));
        Enrol(clients, "a");
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
        Assert.Equal("nobody answered", log.GetRounds("exp-1")[2].MetricsJson);
        Assert.All(log.GetRounds("exp-1"), r => Assert.Null(r.GlobalUpdate));
        Assert.Equal(3, log.GetRounds("exp-1", includeUpdates: true).Count(r => r.GlobalUpdate is not null));
    }

    [SkippableFact]
    public void Experiments_are_listed_in_creation_order_and_an_id_is_taken_once()
    {
        var (log, _) = NewLog();
        log.AddExperiment(Experiment("exp-b") with { CreatedUtc = T0.AddMinutes(1) });
        log.AddExperiment(Experiment("exp-a") with { CreatedUtc = T0.AddMinutes(2) });
        Assert.Equal(["exp-b", "exp-a"], log.ListExperiments().Select(e => e.Id));
        Assert.Throws<InvalidOperationException>(() => log.AddExperiment(Experiment("exp-a")));
        log.SetExperimentState("exp-a", ExperimentState.Stopped, T0.AddMinutes(3));
        Assert.Equal((ExperimentState.Stopped, T0.AddMinutes(3)), (log.GetExperiment("exp-a")!.State, log.GetExperiment("exp-a")!.EndedUtc));
        Assert.Throws<KeyNotFoundException>(() => log.SetExperimentState("exp-none", ExperimentState.Stopped));
        Assert.Equal(new byte[] { 1, 2, 3 }, log.GetExperiment("exp-b")!.Descriptor);
    }

    [SkippableFact]
    public void Enrolment_tokens_are_single_use_and_expire()
    {
        var (_, clients) = NewLog();
        clients.AddEnrolmentToken("e1", "lab", T0, T0.AddMinutes(10));
        Assert.True(clients.RedeemEnrolmentToken("e1", new ClientRecord("c1", "phone", T0, null, false), "t1", T0.AddMinutes(1)), "an unused enrolment token is redeemed once");
        Assert.False(clients.RedeemEnrolmentToken("e1", new ClientRecord("c2", "phone", T0, null, false), "t2", T0.AddMinutes(1)), "a used enrolment token is refused");
        clients.AddEnrolmentToken("e2", "lab", T0, T0.AddMinutes(10));
        Assert.False(clients.RedeemEnrolmentToken("e2", new ClientRecord("c3", "phone", T0, null, false), "t3", T0.AddMinutes(11)), "an expired enrolment token is refused");
        Assert.False(clients.RedeemEnrolmentToken("nope", new ClientRecord("c4", "phone", T0, null, false), "t4", T0), "an unknown enrolment token is refused");
        Assert.Equal("c1", clients.FindClientByToken("t1")!.Id);
        Assert.Null(clients.FindClientByToken("t2"));
    }

    [SkippableFact]
    public void Revoked_clients_and_capabilities_are_kept()
    {
        var (_, clients) = NewLog();
        Enrol(clients, "a");
        Enrol(clients, "b");
        clients.SetClientCapabilities("a", """{"cores":2}""");
        Assert.True(clients.RevokeClient("b"), "an enrolled client can be revoked");
        Assert.False(clients.RevokeClient("nobody"), "revoking an unknown client reports false");
        Assert.Equal(["b"], clients.RevokedClientIds());
        Assert.Equal(("a", """{"cores":2}""", false), (clients.GetClient("a")!.Id, clients.GetClient("a")!.Capabilities, clients.GetClient("a")!.Revoked));
        Assert.True(clients.GetClient("b")!.Revoked, "the revoked client reads back as revoked");
        Assert.Equal(["a", "b"], clients.ListClients().Select(c => c.Id));
    }

    [SkippableFact]
    public void A_failed_client_is_recorded_and_cannot_answer_afterwards()
    {
        var (log, _) = WithOpenRound(3, "a");
        Assert.True(log.MarkAssignmentFailed("exp-1", 1, "a", "disconnected"), "an assigned client can be marked failed");
        Assert.Equal(PacketOutcome.Duplicate, log.RecordPacket("exp-1", 1, "a", [1], "h", null, T0));
        var a = log.GetAssignments("exp-1", 1).Single();
        Assert.Equal(AssignmentState.Failed, a.State);
        Assert.Equal("disconnected", a.Reason);
        Assert.False(log.MarkAssignmentFailed("exp-1", 1, "a", "again"), "a failed assignment is not marked twice");
        Assert.False(log.MarkAssignmentFailed("exp-1", 7, "a", "no such round"), "a round that does not exist has no assignment to fail");
    }

    [SkippableFact]
    public void Rejections_are_counted_per_experiment()
    {
        var (log, _) = NewLog();
        log.RecordRejection("exp-1", 1, "a", "seed index 900 outside [0, 200)", 42, T0);
        log.RecordRejection(null, null, null, "unauthenticated", 0, T0);
        Assert.Equal(2, log.CountRejections());
        Assert.Equal(1, log.CountRejections("exp-1"));
    }

    [SkippableFact]
    public void A_database_from_a_newer_coordinator_is_refused_with_where_it_is()
    {
        var (log, _) = NewLog();
        SetSchemaVersion(99);
        SqliteConnection.ClearAllPools();
        var e = Assert.Throws<InvalidDataException>(ReopenDatabase);
        Assert.Contains(log.Description, e.Message);
        Assert.Contains("99", e.Message);
    }

    [SkippableFact]
    public void A_sign_in_code_is_spent_once_and_not_after_it_expires()
    {
        var (_, clients) = NewLog();
        clients.AddSignInCode("code-1", "admin", "demo", T0, T0.AddMinutes(30));
        clients.AddSignInCode("code-2", "observer", "late", T0, T0.AddMinutes(30));
        int minted = 0;
        (AccessKeyRecord, string) Mint(string role, string label) => (new AccessKeyRecord($"key-{++minted}", label, role, T0, null, false), $"digest-{minted}");
        var key = clients.RedeemSignInCode("code-1", T0.AddMinutes(1), Mint);
        Assert.Equal(("admin", "demo"), (key?.Role, key?.Label));
        Assert.Null(clients.RedeemSignInCode("code-1", T0.AddMinutes(2), Mint));
        Assert.Null(clients.RedeemSignInCode("code-2", T0.AddMinutes(30), Mint));
        Assert.Null(clients.RedeemSignInCode("code-3", T0, Mint));
        Assert.Equal(1, minted);
        Assert.Equal(["key-1"], clients.ListAccessKeys().Select(k => k.Id));
        Assert.Equal("demo", clients.FindAccessKey("digest-1")?.Label);
        Assert.True(clients.RevokeAccessKey("key-1"), "an existing access key can be revoked");
        Assert.True(clients.FindAccessKey("digest-1")!.Revoked, "the revoked access key reads back as revoked");
    }

    [SkippableFact]
    public void Dashboards_read_an_experiments_clients_rejections_and_latest_fingerprints()
    {
        var (log, clients) = WithOpenRound(3, "a", "b");
        Enrol(clients, "c");
        log.RecordPacket("exp-1", 1, "a", [1], "h", null, T0);
        log.MarkAssignmentFailed("exp-1", 1, "b", "out of memory");
        log.CompleteRound("exp-1", 1, [1], null, null, T0, ["a"]);
        log.RecordFingerprint(new FingerprintRecord("exp-1", 1, "a", "f1", T0));
        log.RecordRejection("exp-1", 1, "b", "replay", 10, T0);
        log.RecordRejection("exp-1", 1, "b", "late", 11, T0.AddSeconds(1));
        var seen = log.GetExperimentClients("exp-1", ["c"]);
        Assert.Equal(["a", "b", "c"], seen.Select(x => x.Id));
        Assert.Equal((1, AssignmentState.Received, 1, 0, "f1"), (seen[0].LastRound, seen[0].LastState, seen[0].Delivered, seen[0].Failures, seen[0].Fingerprint));
        Assert.Equal((1, "out of memory", 2L), (seen[1].Failures, seen[1].LastFailureReason, seen[1].Rejections));
        Assert.Null(seen[2].LastRound);
        Assert.Equal(["late", "replay"], log.GetRejections("exp-1", 10).Select(r => r.Reason));
        Assert.Single(log.GetRejections("exp-1", 1));
        Assert.Equal(["f1"], log.GetLatestFingerprints("exp-1").Select(f => f.Fingerprint));
        Assert.Empty(log.GetLatestFingerprints("exp-none"));
    }

    [SkippableFact]
    public void Fingerprints_keep_the_first_report_of_each_client()
    {
        var (log, _) = NewLog();
        log.RecordFingerprint(new FingerprintRecord("exp-1", 1, "a", "f1", T0));
        log.RecordFingerprint(new FingerprintRecord("exp-1", 1, "a", "f2", T0));
        log.RecordFingerprint(new FingerprintRecord("exp-1", 1, "b", "f1", T0.AddSeconds(1)));
        var fps = log.GetFingerprints("exp-1", 1);
        Assert.Equal(["f1", "f1"], fps.Select(f => f.Fingerprint));
        Assert.Equal(T0.AddSeconds(1), fps[1].ReportedUtc);
    }
}

/// <summary>The round log's contract on SQLite, the embedded default.</summary>
public sealed class SqliteRoundLogTests : RoundLogContract
{
    [Fact]
    public void A_version_1_round_log_gains_the_dashboard_and_private_round_tables_and_keeps_its_experiments()
    {
        using (var db = CreateDatabase())
            new SqlRoundLog(db).AddExperiment(new ExperimentRecord("exp-1", "demo", "ferret", [1], ExperimentState.Created, 3, "fp", DateTimeOffset.UnixEpoch, null));
        // Back to version 1 as an older coordinator left it: no access keys, no sign-in codes.
        using (var c = new SqliteConnection($"Data Source={Path}"))
        {
            c.Open();
            using var cmd = c.CreateCommand();
            cmd.CommandText = "DROP TABLE private_round_messages; DROP TABLE private_rounds; DROP TABLE sign_in_codes; DROP TABLE access_keys; DROP INDEX rejections_by_experiment; PRAGMA user_version = 1;";
            cmd.ExecuteNonQuery();
        }
        SqliteConnection.ClearAllPools();
        using var upgraded = ReopenDatabase();
        Assert.Equal("demo", new SqlRoundLog(upgraded).GetExperiment("exp-1")?.Name);
        var clients = new SqlClientRegistry(upgraded);
        clients.AddAccessKey(new AccessKeyRecord("key-1", "screen", "observer", DateTimeOffset.UnixEpoch, null, false), "digest-1");
        Assert.Equal("screen", clients.FindAccessKey("digest-1")?.Label);
        var privateRounds = new SqlPrivateRoundStore(upgraded);
        privateRounds.OpenRound(new PrivateRoundRecord("exp-1", 1, 4, 4, 1.0, PrivateStage.AdvertiseKeys, DateTimeOffset.UnixEpoch));
        Assert.True(privateRounds.GetRound("exp-1", 1) is { Stage: PrivateStage.AdvertiseKeys }, "the upgraded log should hold private rounds (schema version 3)");
    }

    private readonly TempDirectory _dir = new();

    private string Path => _dir.File("rounds.db");

    protected override SqlDatabase CreateDatabase() => new SqliteDatabase(Path);

    protected override SqlDatabase ReopenDatabase() => new SqliteDatabase(Path);

    protected override void SetSchemaVersion(int version)
    {
        using var c = new SqliteConnection($"Data Source={Path}");
        c.Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = $"PRAGMA user_version = {version};";
        cmd.ExecuteNonQuery();
    }

    public override void Dispose()
    {
        base.Dispose();
        _dir.Dispose();
    }
}

/// <summary>The round log's contract on PostgreSQL: a database of its own per test (skipped with the reason when no server can be had).</summary>
public sealed class PostgresRoundLogTests : RoundLogContract
{
    private string? _connectionString;

    protected override SqlDatabase CreateDatabase()
    {
        _connectionString = TestServices.NewPostgresDatabase();
        return new PostgresDatabase(_connectionString);
    }

    protected override SqlDatabase ReopenDatabase() => new PostgresDatabase(_connectionString!);

    protected override void SetSchemaVersion(int version)
    {
        using var c = new NpgsqlConnection(_connectionString);
        c.Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = $"UPDATE ferret_schema SET version = {version}";
        cmd.ExecuteNonQuery();
    }
}
