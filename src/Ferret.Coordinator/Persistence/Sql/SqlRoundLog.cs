using System.Data.Common;
using Ferret.Core.Protocol;

namespace Ferret.Coordinator.Persistence.Sql;

/// <summary>
/// The round log's SQL, written once for SQLite and PostgreSQL (<see cref="SqlDatabase"/> holds the
/// differences). A round's transitions lock its row first (PostgreSQL; SQLite serialises write transactions),
/// so a packet being recorded and the round being completed never interleave, on one instance or several.
/// </summary>
public sealed class SqlRoundLog(SqlDatabase db) : IRoundLog
{
    private const string ExperimentColumns = "id, name, algorithm, descriptor, state, rounds, artifact_fingerprint, created_utc, ended_utc";
    private const string RoundColumns = "experiment_id, round, state, opened_utc, deadline_utc, closed_utc, global_update, aggregated, missing, metrics";
    private static readonly string RoundColumnsWithoutUpdate = RoundColumns.Replace("global_update", "NULL", StringComparison.Ordinal);
    private static readonly string Open = RoundState.Open.ToString();
    private static readonly string Assigned = AssignmentState.Assigned.ToString();
    private static readonly string Received = AssignmentState.Received.ToString();
    private static readonly string Missed = AssignmentState.Missed.ToString();

    public string Description => db.Description;

    // ---- experiments -------------------------------------------------------------------------------

    public void AddExperiment(ExperimentRecord experiment)
    {
        ArgumentNullException.ThrowIfNull(experiment);
        var e = experiment;
        using var c = db.Open();
        try
        {
            db.Execute(c, null, """
                INSERT INTO experiments (id, name, algorithm, descriptor, state, rounds, artifact_fingerprint, created_utc, ended_utc)
                VALUES (@id, @name, @alg, @desc, @state, @rounds, @fp, @created, @ended)
                """,
                ("id", e.Id), ("name", e.Name), ("alg", e.Algorithm), ("desc", e.Descriptor), ("state", e.State.ToString()),
                ("rounds", e.Rounds), ("fp", e.ArtifactFingerprint), ("created", db.Time(e.CreatedUtc)), ("ended", db.Time(e.EndedUtc)));
        }
        catch (DbException ex) when (db.IsUniqueViolation(ex))
        {
            throw new InvalidOperationException($"An experiment with id '{e.Id}' already exists.", ex);
        }
    }

    public ExperimentRecord? GetExperiment(string id)
    {
        using var c = db.Open();
        return db.Query(c, null, $"SELECT {ExperimentColumns} FROM experiments WHERE id = @id", ReadExperiment, ("id", id)).SingleOrDefault();
    }

    public IReadOnlyList<ExperimentRecord> ListExperiments()
    {
        using var c = db.Open();
        return db.Query(c, null, $"SELECT {ExperimentColumns} FROM experiments ORDER BY created_utc, id", ReadExperiment);
    }

    public void SetExperimentState(string id, ExperimentState state, DateTimeOffset? endedUtc = null)
    {
        using var c = db.Open();
        if (db.Execute(c, null, "UPDATE experiments SET state = @s, ended_utc = COALESCE(@e, ended_utc) WHERE id = @id",
            ("s", state.ToString()), ("e", db.Time(endedUtc)), ("id", id)) != 1)
        {
            throw new KeyNotFoundException($"No experiment '{id}'.");
        }
    }

    public byte[]? GetServerState(string experimentId)
    {
        using var c = db.Open();
        return db.Scalar(c, null, "SELECT server_state FROM experiments WHERE id = @id", ("id", experimentId)) as byte[];
    }

    // ---- rounds ------------------------------------------------------------------------------------

    public void OpenRound(string experimentId, int round, DateTimeOffset openedUtc, DateTimeOffset deadlineUtc, IReadOnlyCollection<string> clientIds)
    {
        ArgumentNullException.ThrowIfNull(clientIds);
        using var c = db.Open();
        using var tx = c.BeginTransaction();
        try
        {
            db.Execute(c, tx, "INSERT INTO rounds (experiment_id, round, state, opened_utc, deadline_utc) VALUES (@e, @r, @s, @o, @d)",
                ("e", experimentId), ("r", round), ("s", Open), ("o", db.Time(openedUtc)), ("d", db.Time(deadlineUtc)));
        }
        catch (DbException ex) when (db.IsUniqueViolation(ex))
        {
            throw new InvalidOperationException($"Round {round} of experiment '{experimentId}' was opened already.", ex);
        }
        foreach (var id in clientIds)
        {
            db.Execute(c, tx, "INSERT INTO assignments (experiment_id, round, client_id, state) VALUES (@e, @r, @c, @s)",
                ("e", experimentId), ("r", round), ("c", id), ("s", Assigned));
        }
        db.Execute(c, tx, "UPDATE experiments SET state = @s WHERE id = @e AND state = @created",
            ("s", ExperimentState.Running.ToString()), ("e", experimentId), ("created", ExperimentState.Created.ToString()));
        tx.Commit();
    }

    public PacketOutcome RecordPacket(string experimentId, int round, string clientId, byte[] packet, string packetSha256, double? trainLoss, DateTimeOffset receivedUtc)
    {
        ArgumentNullException.ThrowIfNull(packet);
        using var c = db.Open();
        using var tx = c.BeginTransaction();
        var roundState = LockRound(c, tx, experimentId, round, db.ForShare);
        if (roundState != Open)
            return roundState is null ? PacketOutcome.NotAssigned : PacketOutcome.RoundClosed;
        var state = db.Scalar(c, tx, "SELECT state FROM assignments WHERE experiment_id = @e AND round = @r AND client_id = @c",
            ("e", experimentId), ("r", round), ("c", clientId)) as string;
        if (state is null)
            return PacketOutcome.NotAssigned;
        // Compare-and-set: of two copies racing through two instances, exactly one finds the assignment still waiting.
        int stored = db.Execute(c, tx, """
            UPDATE assignments SET state = @s, packet = @p, packet_sha256 = @h, packet_bytes = @n, received_utc = @t, train_loss = @l
            WHERE experiment_id = @e AND round = @r AND client_id = @c AND state = @a
            """,
            ("s", Received), ("p", packet), ("h", packetSha256), ("n", packet.LongLength),
            ("t", db.Time(receivedUtc)), ("l", trainLoss), ("e", experimentId), ("r", round), ("c", clientId), ("a", Assigned));
        if (stored != 1)
            return PacketOutcome.Duplicate;
        tx.Commit();
        return PacketOutcome.Accepted;
    }

    public bool MarkAssignmentFailed(string experimentId, int round, string clientId, string reason)
    {
        using var c = db.Open();
        using var tx = c.BeginTransaction();
        if (LockRound(c, tx, experimentId, round, db.ForShare) != Open)
            return false;
        bool marked = db.Execute(c, tx, """
            UPDATE assignments SET state = @f, reason = @why
            WHERE experiment_id = @e AND round = @r AND client_id = @c AND state = @a
            """,
            ("f", AssignmentState.Failed.ToString()), ("why", reason), ("e", experimentId), ("r", round), ("c", clientId), ("a", Assigned)) == 1;
        tx.Commit();
        return marked;
    }

    public IReadOnlyList<(string ClientId, byte[] Packet)> GetPackets(string experimentId, int round)
    {
        using var c = db.Open();
        var packets = db.Query(c, null, "SELECT client_id, packet FROM assignments WHERE experiment_id = @e AND round = @r AND state = @s",
            r => (ClientId: r.GetString(0), Packet: (byte[])r.GetValue(1)), ("e", experimentId), ("r", round), ("s", Received));
        // Ordinal order whatever the database's collation: the aggregate's float sums must come out the same on every store.
        packets.Sort((x, y) => string.CompareOrdinal(x.ClientId, y.ClientId));
        return packets;
    }

    public (RoundState Round, DateTimeOffset DeadlineUtc, AssignmentState? Assignment)? GetSubmissionState(string experimentId, int round, string clientId)
    {
        using var c = db.Open();
        var rows = db.Query(c, null, """
            SELECT r.state, r.deadline_utc, a.state FROM rounds r
            LEFT JOIN assignments a ON a.experiment_id = r.experiment_id AND a.round = r.round AND a.client_id = @c
            WHERE r.experiment_id = @e AND r.round = @r
            """,
            rd => (Enum.Parse<RoundState>(rd.GetString(0)), db.ReadTime(rd, 1), rd.IsDBNull(2) ? (AssignmentState?)null : Enum.Parse<AssignmentState>(rd.GetString(2))),
            ("e", experimentId), ("r", round), ("c", clientId));
        return rows.Count == 0 ? null : rows[0];
    }

    public bool RejectStoredPacket(string experimentId, int round, string clientId, string reason)
    {
        using var c = db.Open();
        using var tx = c.BeginTransaction();
        if (LockRound(c, tx, experimentId, round, db.ForUpdate) != Open)
            return false;
        bool rejected = db.Execute(c, tx, """
            UPDATE assignments SET state = @x, reason = @why, packet = NULL
            WHERE experiment_id = @e AND round = @r AND client_id = @c AND state = @s
            """,
            ("x", AssignmentState.Rejected.ToString()), ("why", reason), ("e", experimentId), ("r", round), ("c", clientId), ("s", Received)) == 1;
        tx.Commit();
        return rejected;
    }

    public void CompleteRound(string experimentId, int round, byte[] globalUpdate, byte[]? serverState, string? metricsJson, DateTimeOffset closedUtc,
        IReadOnlyCollection<string>? aggregatedClients = null)
    {
        ArgumentNullException.ThrowIfNull(globalUpdate);
        using var c = db.Open();
        using var tx = c.BeginTransaction();
        var state = LockRound(c, tx, experimentId, round, db.ForUpdate);
        if (state != Open)
            throw new InvalidOperationException($"Round {round} of experiment '{experimentId}' is {state ?? "unknown"}, not open.");
        if (aggregatedClients is not null)
        {
            var received = db.Query(c, tx, "SELECT client_id FROM assignments WHERE experiment_id = @e AND round = @r AND state = @s",
                r => r.GetString(0), ("e", experimentId), ("r", round), ("s", Received));
            if (!received.ToHashSet(StringComparer.Ordinal).SetEquals(aggregatedClients))
            {
                throw new InvalidOperationException(
                    $"Round {round} of experiment '{experimentId}' received {received.Count} packets, not the {aggregatedClients.Count} aggregated; aggregate again.");
            }
        }
        db.Execute(c, tx, "UPDATE assignments SET state = @m WHERE experiment_id = @e AND round = @r AND state = @a",
            ("m", Missed), ("e", experimentId), ("r", round), ("a", Assigned));
        long aggregated = db.Count(c, tx, "SELECT COUNT(*) FROM assignments WHERE experiment_id = @e AND round = @r AND state = @s",
            ("e", experimentId), ("r", round), ("s", Received));
        long missing = db.Count(c, tx, "SELECT COUNT(*) FROM assignments WHERE experiment_id = @e AND round = @r AND state <> @s",
            ("e", experimentId), ("r", round), ("s", Received));
        db.Execute(c, tx, """
            UPDATE rounds SET state = @s, closed_utc = @t, global_update = @g, aggregated = @a, missing = @m, metrics = @x
            WHERE experiment_id = @e AND round = @r
            """,
            ("s", RoundState.Completed.ToString()), ("t", db.Time(closedUtc)), ("g", globalUpdate), ("a", (int)aggregated), ("m", (int)missing),
            ("x", metricsJson), ("e", experimentId), ("r", round));
        db.Execute(c, tx, "UPDATE experiments SET server_state = @st WHERE id = @e", ("st", serverState), ("e", experimentId));
        long total = db.Count(c, tx, "SELECT rounds FROM experiments WHERE id = @e", ("e", experimentId));
        if (round >= total)
        {
            db.Execute(c, tx, "UPDATE experiments SET state = @s, ended_utc = @t WHERE id = @e",
                ("s", ExperimentState.Completed.ToString()), ("t", db.Time(closedUtc)), ("e", experimentId));
        }
        KillSwitch.Reach(KillPoints.AggregationTransaction);
        tx.Commit();
    }

    public void AbandonRound(string experimentId, int round, string reason, DateTimeOffset closedUtc)
    {
        using var c = db.Open();
        using var tx = c.BeginTransaction();
        if (LockRound(c, tx, experimentId, round, db.ForUpdate) != Open)
            return;
        db.Execute(c, tx, "UPDATE assignments SET state = @m, reason = COALESCE(reason, @why) WHERE experiment_id = @e AND round = @r AND state = @a",
            ("m", Missed), ("why", reason), ("e", experimentId), ("r", round), ("a", Assigned));
        db.Execute(c, tx, "UPDATE rounds SET state = @s, closed_utc = @t, metrics = @why WHERE experiment_id = @e AND round = @r",
            ("s", RoundState.Abandoned.ToString()), ("t", db.Time(closedUtc)), ("why", reason), ("e", experimentId), ("r", round));
        tx.Commit();
    }

    public RoundRecord? GetRound(string experimentId, int round)
    {
        using var c = db.Open();
        return db.Query(c, null, $"SELECT {RoundColumns} FROM rounds WHERE experiment_id = @e AND round = @r", ReadRound,
            ("e", experimentId), ("r", round)).SingleOrDefault();
    }

    public RoundProgress GetProgress(string experimentId)
    {
        using var c = db.Open();
        var open = db.Query(c, null, $"SELECT {RoundColumnsWithoutUpdate} FROM rounds WHERE experiment_id = @e AND state = @o ORDER BY round DESC LIMIT 1",
            ReadRound, ("e", experimentId), ("o", Open)).SingleOrDefault();
        var (last, completed) = db.Query(c, null,
            "SELECT COALESCE(MAX(round), 0), COALESCE(MAX(CASE WHEN state = @done THEN round END), 0) FROM rounds WHERE experiment_id = @e",
            r => (r.GetInt32(0), r.GetInt32(1)), ("e", experimentId), ("done", RoundState.Completed.ToString())).Single();
        return new RoundProgress(open, last, completed);
    }

    public IReadOnlyList<RoundRecord> GetRounds(string experimentId, bool includeUpdates = false)
    {
        using var c = db.Open();
        return db.Query(c, null, $"SELECT {(includeUpdates ? RoundColumns : RoundColumnsWithoutUpdate)} FROM rounds WHERE experiment_id = @e ORDER BY round",
            ReadRound, ("e", experimentId));
    }

    public IReadOnlyList<(int Round, byte[] GlobalUpdate)> GetGlobalUpdates(string experimentId, int afterRound)
    {
        using var c = db.Open();
        return db.Query(c, null, "SELECT round, global_update FROM rounds WHERE experiment_id = @e AND round > @r AND state = @s ORDER BY round",
            r => (r.GetInt32(0), (byte[])r.GetValue(1)), ("e", experimentId), ("r", afterRound), ("s", RoundState.Completed.ToString()));
    }

    public IReadOnlyList<AssignmentRecord> GetAssignments(string experimentId, int round)
    {
        using var c = db.Open();
        return db.Query(c, null, """
            SELECT experiment_id, round, client_id, state, packet_sha256, packet_bytes, received_utc, reason, train_loss
            FROM assignments WHERE experiment_id = @e AND round = @r ORDER BY client_id
            """,
            r => new AssignmentRecord(r.GetString(0), r.GetInt32(1), r.GetString(2), Enum.Parse<AssignmentState>(r.GetString(3)),
                r.IsDBNull(4) ? null : r.GetString(4), r.GetInt64(5), db.ReadTimeOrNull(r, 6), r.IsDBNull(7) ? null : r.GetString(7),
                r.IsDBNull(8) ? null : r.GetDouble(8)),
            ("e", experimentId), ("r", round));
    }

    // ---- what clients report -----------------------------------------------------------------------

    public void RecordRejection(string? experimentId, int? round, string? clientId, string reason, long bytes, DateTimeOffset atUtc)
    {
        using var c = db.Open();
        db.Execute(c, null, "INSERT INTO rejections (experiment_id, round, client_id, reason, bytes, at_utc) VALUES (@e, @r, @c, @why, @n, @t)",
            ("e", experimentId), ("r", round), ("c", clientId), ("why", reason), ("n", bytes), ("t", db.Time(atUtc)));
    }

    public long CountRejections(string? experimentId = null)
    {
        using var c = db.Open();
        return experimentId is null
            ? db.Count(c, null, "SELECT COUNT(*) FROM rejections")
            : db.Count(c, null, "SELECT COUNT(*) FROM rejections WHERE experiment_id = @e", ("e", experimentId));
    }

    public void RecordFingerprint(FingerprintRecord fingerprint)
    {
        ArgumentNullException.ThrowIfNull(fingerprint);
        var f = fingerprint;
        using var c = db.Open();
        db.Execute(c, null, """
            INSERT INTO fingerprints (experiment_id, round, client_id, fingerprint, reported_utc) VALUES (@e, @r, @c, @f, @t)
            ON CONFLICT DO NOTHING
            """, ("e", f.ExperimentId), ("r", f.Round), ("c", f.ClientId), ("f", f.Fingerprint), ("t", db.Time(f.ReportedUtc)));
    }

    public IReadOnlyList<FingerprintRecord> GetFingerprints(string experimentId, int round)
    {
        using var c = db.Open();
        return db.Query(c, null, """
            SELECT experiment_id, round, client_id, fingerprint, reported_utc FROM fingerprints
            WHERE experiment_id = @e AND round = @r ORDER BY client_id
            """, r => new FingerprintRecord(r.GetString(0), r.GetInt32(1), r.GetString(2), r.GetString(3), db.ReadTime(r, 4)),
            ("e", experimentId), ("r", round));
    }

    // ---- what dashboards read ----------------------------------------------------------------------

    public IReadOnlyList<RejectionRecord> GetRejections(string experimentId, int limit)
    {
        using var c = db.Open();
        return db.Query(c, null, "SELECT id, round, client_id, reason, bytes, at_utc FROM rejections WHERE experiment_id = @e ORDER BY id DESC LIMIT @n",
            r => new RejectionRecord(r.GetInt64(0), r.IsDBNull(1) ? null : r.GetInt32(1), r.IsDBNull(2) ? null : r.GetString(2), r.GetString(3),
                r.GetInt64(4), db.ReadTime(r, 5)),
            ("e", experimentId), ("n", limit));
    }

    public IReadOnlyList<ExperimentClientRecord> GetExperimentClients(string experimentId, IEnumerable<string> alsoInclude)
    {
        ArgumentNullException.ThrowIfNull(alsoInclude);
        var extra = alsoInclude.Distinct(StringComparer.Ordinal).ToList();
        var args = new List<(string, object?)>
        {
            ("e", experimentId), ("failed", nameof(AssignmentState.Failed)), ("missed", nameof(AssignmentState.Missed)), ("received", nameof(AssignmentState.Received)),
        };
        args.AddRange(extra.Select((id, i) => ($"x{i}", (object?)id)));
        string extraIds = extra.Count == 0 ? "" : " UNION SELECT id FROM clients WHERE id IN (" + string.Join(", ", extra.Select((_, i) => $"@x{i}")) + ")";
        using var c = db.Open();
        var list = db.Query(c, null, $"""
            WITH mine AS (SELECT client_id, round, state, reason FROM assignments WHERE experiment_id = @e),
                 trouble AS (SELECT client_id, round, state, reason FROM mine WHERE state IN (@failed, @missed))
            SELECT c.id, c.name, c.capabilities, c.revoked,
                (SELECT MAX(round) FROM mine WHERE client_id = c.id),
                (SELECT state FROM mine WHERE client_id = c.id ORDER BY round DESC LIMIT 1),
                (SELECT COUNT(*) FROM mine WHERE client_id = c.id AND state = @received),
                (SELECT COUNT(*) FROM trouble WHERE client_id = c.id),
                (SELECT round FROM trouble WHERE client_id = c.id ORDER BY round DESC LIMIT 1),
                (SELECT state FROM trouble WHERE client_id = c.id ORDER BY round DESC LIMIT 1),
                (SELECT reason FROM trouble WHERE client_id = c.id ORDER BY round DESC LIMIT 1),
                (SELECT round FROM fingerprints f WHERE f.experiment_id = @e AND f.client_id = c.id ORDER BY round DESC LIMIT 1),
                (SELECT fingerprint FROM fingerprints f WHERE f.experiment_id = @e AND f.client_id = c.id ORDER BY round DESC LIMIT 1),
                (SELECT COUNT(*) FROM rejections j WHERE j.experiment_id = @e AND j.client_id = c.id)
            FROM clients c
            WHERE c.id IN (SELECT client_id FROM mine UNION SELECT client_id FROM fingerprints WHERE experiment_id = @e{extraIds})
            """,
            r => new ExperimentClientRecord(r.GetString(0), r.GetString(1), r.IsDBNull(2) ? null : r.GetString(2), r.GetBoolean(3),
                r.IsDBNull(4) ? null : r.GetInt32(4), r.IsDBNull(5) ? null : Enum.Parse<AssignmentState>(r.GetString(5)), Convert.ToInt32(r.GetValue(6), System.Globalization.CultureInfo.InvariantCulture),
                Convert.ToInt32(r.GetValue(7), System.Globalization.CultureInfo.InvariantCulture), r.IsDBNull(8) ? null : r.GetInt32(8),
                r.IsDBNull(9) ? null : Enum.Parse<AssignmentState>(r.GetString(9)), r.IsDBNull(10) ? null : r.GetString(10),
                r.IsDBNull(11) ? null : r.GetInt32(11), r.IsDBNull(12) ? null : r.GetString(12), Convert.ToInt64(r.GetValue(13), System.Globalization.CultureInfo.InvariantCulture)),
            [.. args]);
        list.Sort((x, y) => string.CompareOrdinal(x.Id, y.Id));
        return list;
    }

    public IReadOnlyList<FingerprintRecord> GetLatestFingerprints(string experimentId)
    {
        using var c = db.Open();
        var round = db.Scalar(c, null, "SELECT MAX(round) FROM fingerprints WHERE experiment_id = @e", ("e", experimentId));
        return round is null ? [] : GetFingerprints(experimentId, Convert.ToInt32(round, System.Globalization.CultureInfo.InvariantCulture));
    }

    // ---- plumbing ----------------------------------------------------------------------------------

    /// <summary>A round's state, its row held (shared or exclusive) until the transaction ends; null when there is no such round.</summary>
    private string? LockRound(DbConnection c, DbTransaction tx, string experimentId, int round, string lockClause) =>
        db.Scalar(c, tx, $"SELECT state FROM rounds WHERE experiment_id = @e AND round = @r{lockClause}", ("e", experimentId), ("r", round)) as string;

    private ExperimentRecord ReadExperiment(DbDataReader r) => new(
        r.GetString(0), r.GetString(1), r.GetString(2), (byte[])r.GetValue(3), Enum.Parse<ExperimentState>(r.GetString(4)),
        r.GetInt32(5), r.GetString(6), db.ReadTime(r, 7), db.ReadTimeOrNull(r, 8));

    private RoundRecord ReadRound(DbDataReader r) => new(
        r.GetString(0), r.GetInt32(1), Enum.Parse<RoundState>(r.GetString(2)), db.ReadTime(r, 3), db.ReadTime(r, 4),
        db.ReadTimeOrNull(r, 5), r.IsDBNull(6) ? null : (byte[])r.GetValue(6), r.GetInt32(7), r.GetInt32(8),
        r.IsDBNull(9) ? null : r.GetString(9));
}
