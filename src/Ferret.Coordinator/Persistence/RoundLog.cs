using System.Globalization;
using Microsoft.Data.Sqlite;

namespace Ferret.Coordinator.Persistence;

/// <summary>What became of a packet that reached the round log.</summary>
public enum PacketOutcome
{
    Accepted,
    NotAssigned,
    Duplicate,
    RoundClosed,
}

/// <summary>
/// The coordinator's durable round log in an embedded SQLite database (WAL, synchronous=FULL): experiments,
/// clients, rounds, assignments, received packets, global updates, fingerprints and rejections. Every state
/// change that matters is one transaction, so a coordinator killed at any moment restarts with every
/// completed round intact and every open round resumable from the packets that had arrived.
/// </summary>
public sealed partial class RoundLog
{
    private const int SchemaVersion = 2;
    private readonly string _connectionString;

    public RoundLog(string databasePath)
    {
        ArgumentException.ThrowIfNullOrEmpty(databasePath);
        var full = Path.GetFullPath(databasePath);
        var dir = Path.GetDirectoryName(full);
        if (dir is not null && !Directory.Exists(dir))
            throw new DirectoryNotFoundException($"The folder of the round log '{full}' does not exist.");
        DatabasePath = full;
        _connectionString = new SqliteConnectionStringBuilder
        {
            DataSource = full,
            Mode = SqliteOpenMode.ReadWriteCreate,
            Pooling = true,
            DefaultTimeout = 30,
        }.ToString();
        Migrate();
    }

    public string DatabasePath { get; }

    private SqliteConnection Open()
    {
        var c = new SqliteConnection(_connectionString);
        c.Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = "PRAGMA foreign_keys = ON; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 30000;";
        cmd.ExecuteNonQuery();
        return c;
    }

    private void Migrate()
    {
        using var c = Open();
        using (var wal = c.CreateCommand())
        {
            wal.CommandText = "PRAGMA journal_mode = WAL;";
            wal.ExecuteNonQuery();
        }
        using var tx = c.BeginTransaction();
        int version = Scalar<long?>(c, tx, "SELECT user_version FROM pragma_user_version") is long v ? (int)v : 0;
        if (version > SchemaVersion)
            throw new InvalidDataException($"Round log '{DatabasePath}' has schema version {version}; this coordinator knows up to {SchemaVersion}.");
        if (version < 1)
        {
            Execute(c, tx, """
                CREATE TABLE experiments (
                    id TEXT PRIMARY KEY, name TEXT NOT NULL, algorithm TEXT NOT NULL, descriptor BLOB NOT NULL,
                    state TEXT NOT NULL, rounds INTEGER NOT NULL, artifact_fingerprint TEXT NOT NULL,
                    created_utc TEXT NOT NULL, ended_utc TEXT, server_state BLOB);
                CREATE TABLE clients (
                    id TEXT PRIMARY KEY, name TEXT NOT NULL, token_sha256 TEXT NOT NULL UNIQUE,
                    enrolled_utc TEXT NOT NULL, capabilities TEXT, revoked INTEGER NOT NULL DEFAULT 0);
                CREATE TABLE enrolment_tokens (
                    token_sha256 TEXT PRIMARY KEY, label TEXT NOT NULL, created_utc TEXT NOT NULL,
                    expires_utc TEXT NOT NULL, client_id TEXT REFERENCES clients(id));
                CREATE TABLE rounds (
                    experiment_id TEXT NOT NULL REFERENCES experiments(id), round INTEGER NOT NULL, state TEXT NOT NULL,
                    opened_utc TEXT NOT NULL, deadline_utc TEXT NOT NULL, closed_utc TEXT, global_update BLOB,
                    aggregated INTEGER NOT NULL DEFAULT 0, missing INTEGER NOT NULL DEFAULT 0, metrics TEXT,
                    PRIMARY KEY (experiment_id, round));
                CREATE TABLE assignments (
                    experiment_id TEXT NOT NULL, round INTEGER NOT NULL, client_id TEXT NOT NULL REFERENCES clients(id),
                    state TEXT NOT NULL, packet_sha256 TEXT, packet_bytes INTEGER NOT NULL DEFAULT 0, received_utc TEXT,
                    reason TEXT, train_loss REAL, packet BLOB,
                    PRIMARY KEY (experiment_id, round, client_id),
                    FOREIGN KEY (experiment_id, round) REFERENCES rounds(experiment_id, round));
                CREATE TABLE fingerprints (
                    experiment_id TEXT NOT NULL, round INTEGER NOT NULL, client_id TEXT NOT NULL, fingerprint TEXT NOT NULL,
                    reported_utc TEXT NOT NULL, PRIMARY KEY (experiment_id, round, client_id));
                CREATE TABLE rejections (
                    id INTEGER PRIMARY KEY AUTOINCREMENT, experiment_id TEXT, round INTEGER, client_id TEXT,
                    reason TEXT NOT NULL, bytes INTEGER NOT NULL, at_utc TEXT NOT NULL);
                CREATE INDEX assignments_by_client ON assignments (client_id, experiment_id, round);
                """);
        }
        if (version < 2)
            Execute(c, tx, AccessKeysSchema);
        if (version < SchemaVersion)
            Execute(c, tx, $"PRAGMA user_version = {SchemaVersion};");
        tx.Commit();
    }

    // ---- experiments -------------------------------------------------------------------------------

    public void AddExperiment(ExperimentRecord e)
    {
        ArgumentNullException.ThrowIfNull(e);
        using var c = Open();
        using var cmd = Command(c, null, """
            INSERT INTO experiments (id, name, algorithm, descriptor, state, rounds, artifact_fingerprint, created_utc, ended_utc)
            VALUES ($id, $name, $alg, $desc, $state, $rounds, $fp, $created, $ended)
            """,
            ("$id", e.Id), ("$name", e.Name), ("$alg", e.Algorithm), ("$desc", e.Descriptor), ("$state", e.State.ToString()),
            ("$rounds", e.Rounds), ("$fp", e.ArtifactFingerprint), ("$created", Iso(e.CreatedUtc)), ("$ended", Iso(e.EndedUtc)));
        try
        {
            cmd.ExecuteNonQuery();
        }
        catch (SqliteException ex) when (ex.SqliteErrorCode == 19)
        {
            throw new InvalidOperationException($"An experiment with id '{e.Id}' already exists.", ex);
        }
    }

    public ExperimentRecord? GetExperiment(string id)
    {
        using var c = Open();
        using var cmd = Command(c, null, $"SELECT {ExperimentColumns} FROM experiments WHERE id = $id", ("$id", id));
        using var r = cmd.ExecuteReader();
        return r.Read() ? ReadExperiment(r) : null;
    }

    public IReadOnlyList<ExperimentRecord> ListExperiments()
    {
        using var c = Open();
        using var cmd = Command(c, null, $"SELECT {ExperimentColumns} FROM experiments ORDER BY created_utc, id");
        using var r = cmd.ExecuteReader();
        var list = new List<ExperimentRecord>();
        while (r.Read())
            list.Add(ReadExperiment(r));
        return list;
    }

    public void SetExperimentState(string id, ExperimentState state, DateTimeOffset? endedUtc = null)
    {
        using var c = Open();
        using var cmd = Command(c, null, "UPDATE experiments SET state = $s, ended_utc = COALESCE($e, ended_utc) WHERE id = $id",
            ("$s", state.ToString()), ("$e", Iso(endedUtc)), ("$id", id));
        if (cmd.ExecuteNonQuery() != 1)
            throw new KeyNotFoundException($"No experiment '{id}'.");
    }

    /// <summary>The aggregator's state after the last completed round (seed pool, momentum), or null before round 1.</summary>
    public byte[]? GetServerState(string experimentId)
    {
        using var c = Open();
        return Scalar<byte[]?>(c, null, "SELECT server_state FROM experiments WHERE id = $id", ("$id", experimentId));
    }

    // ---- clients -----------------------------------------------------------------------------------

    public void AddEnrolmentToken(string tokenSha256, string label, DateTimeOffset createdUtc, DateTimeOffset expiresUtc)
    {
        using var c = Open();
        using var cmd = Command(c, null, "INSERT INTO enrolment_tokens (token_sha256, label, created_utc, expires_utc) VALUES ($t, $l, $c, $x)",
            ("$t", tokenSha256), ("$l", label), ("$c", Iso(createdUtc)), ("$x", Iso(expiresUtc)));
        cmd.ExecuteNonQuery();
    }

    /// <summary>
    /// Spends an enrolment token and registers the client in one transaction. Returns false when the token
    /// is unknown, expired or already spent.
    /// </summary>
    public bool RedeemEnrolmentToken(string enrolmentSha256, ClientRecord client, string clientTokenSha256, DateTimeOffset nowUtc)
    {
        ArgumentNullException.ThrowIfNull(client);
        using var c = Open();
        using var tx = c.BeginTransaction();
        var expires = Scalar<string?>(c, tx, "SELECT expires_utc FROM enrolment_tokens WHERE token_sha256 = $t AND client_id IS NULL", ("$t", enrolmentSha256));
        if (expires is null || ParseIso(expires) <= nowUtc)
            return false;
        Execute(c, tx, "INSERT INTO clients (id, name, token_sha256, enrolled_utc, capabilities, revoked) VALUES ($id, $n, $t, $e, $cap, 0)",
            ("$id", client.Id), ("$n", client.Name), ("$t", clientTokenSha256), ("$e", Iso(client.EnrolledUtc)), ("$cap", client.Capabilities));
        Execute(c, tx, "UPDATE enrolment_tokens SET client_id = $id WHERE token_sha256 = $t", ("$id", client.Id), ("$t", enrolmentSha256));
        tx.Commit();
        return true;
    }

    public ClientRecord? FindClientByToken(string tokenSha256)
    {
        using var c = Open();
        using var cmd = Command(c, null, "SELECT id, name, enrolled_utc, capabilities, revoked FROM clients WHERE token_sha256 = $t", ("$t", tokenSha256));
        using var r = cmd.ExecuteReader();
        return r.Read() ? ReadClient(r) : null;
    }

    public ClientRecord? GetClient(string id)
    {
        using var c = Open();
        using var cmd = Command(c, null, "SELECT id, name, enrolled_utc, capabilities, revoked FROM clients WHERE id = $id", ("$id", id));
        using var r = cmd.ExecuteReader();
        return r.Read() ? ReadClient(r) : null;
    }

    public IReadOnlyList<ClientRecord> ListClients()
    {
        using var c = Open();
        using var cmd = Command(c, null, "SELECT id, name, enrolled_utc, capabilities, revoked FROM clients ORDER BY enrolled_utc, id");
        using var r = cmd.ExecuteReader();
        var list = new List<ClientRecord>();
        while (r.Read())
            list.Add(ReadClient(r));
        return list;
    }

    /// <summary>Ids of revoked clients (a revoked client may still hold a connection it opened before).</summary>
    public HashSet<string> RevokedClientIds()
    {
        using var c = Open();
        using var cmd = Command(c, null, "SELECT id FROM clients WHERE revoked = 1");
        using var rd = cmd.ExecuteReader();
        var ids = new HashSet<string>(StringComparer.Ordinal);
        while (rd.Read())
            ids.Add(rd.GetString(0));
        return ids;
    }

    public void SetClientCapabilities(string clientId, string capabilitiesJson)
    {
        using var c = Open();
        Execute(c, null, "UPDATE clients SET capabilities = $cap WHERE id = $id", ("$cap", capabilitiesJson), ("$id", clientId));
    }

    public bool RevokeClient(string clientId)
    {
        using var c = Open();
        using var cmd = Command(c, null, "UPDATE clients SET revoked = 1 WHERE id = $id", ("$id", clientId));
        return cmd.ExecuteNonQuery() == 1;
    }

    // ---- rounds ------------------------------------------------------------------------------------

    /// <summary>Opens a round and its assignments in one transaction.</summary>
    public void OpenRound(string experimentId, int round, DateTimeOffset openedUtc, DateTimeOffset deadlineUtc, IReadOnlyCollection<string> clientIds)
    {
        ArgumentNullException.ThrowIfNull(clientIds);
        using var c = Open();
        using var tx = c.BeginTransaction();
        Execute(c, tx, "INSERT INTO rounds (experiment_id, round, state, opened_utc, deadline_utc) VALUES ($e, $r, $s, $o, $d)",
            ("$e", experimentId), ("$r", round), ("$s", RoundState.Open.ToString()), ("$o", Iso(openedUtc)), ("$d", Iso(deadlineUtc)));
        foreach (var id in clientIds)
        {
            Execute(c, tx, "INSERT INTO assignments (experiment_id, round, client_id, state) VALUES ($e, $r, $c, $s)",
                ("$e", experimentId), ("$r", round), ("$c", id), ("$s", AssignmentState.Assigned.ToString()));
        }
        Execute(c, tx, "UPDATE experiments SET state = $s WHERE id = $e AND state = $created",
            ("$s", ExperimentState.Running.ToString()), ("$e", experimentId), ("$created", ExperimentState.Created.ToString()));
        tx.Commit();
    }

    /// <summary>
    /// Stores a validated packet if and only if its sender is assigned to this open round and has not
    /// answered yet: one packet per client per round, decided atomically.
    /// </summary>
    public PacketOutcome RecordPacket(string experimentId, int round, string clientId, byte[] packet, string packetSha256, double? trainLoss, DateTimeOffset receivedUtc)
    {
        ArgumentNullException.ThrowIfNull(packet);
        using var c = Open();
        using var tx = c.BeginTransaction();
        var roundState = Scalar<string?>(c, tx, "SELECT state FROM rounds WHERE experiment_id = $e AND round = $r", ("$e", experimentId), ("$r", round));
        if (roundState != RoundState.Open.ToString())
            return roundState is null ? PacketOutcome.NotAssigned : PacketOutcome.RoundClosed;
        var state = Scalar<string?>(c, tx, "SELECT state FROM assignments WHERE experiment_id = $e AND round = $r AND client_id = $c",
            ("$e", experimentId), ("$r", round), ("$c", clientId));
        if (state is null)
            return PacketOutcome.NotAssigned;
        if (state != AssignmentState.Assigned.ToString())
            return PacketOutcome.Duplicate;
        Execute(c, tx, """
            UPDATE assignments SET state = $s, packet = $p, packet_sha256 = $h, packet_bytes = $n, received_utc = $t, train_loss = $l
            WHERE experiment_id = $e AND round = $r AND client_id = $c
            """,
            ("$s", AssignmentState.Received.ToString()), ("$p", packet), ("$h", packetSha256), ("$n", packet.LongLength),
            ("$t", Iso(receivedUtc)), ("$l", trainLoss), ("$e", experimentId), ("$r", round), ("$c", clientId));
        tx.Commit();
        return PacketOutcome.Accepted;
    }

    /// <summary>Marks an assigned client as failed (it reported an error, or disconnected mid-round).</summary>
    public bool MarkAssignmentFailed(string experimentId, int round, string clientId, string reason)
    {
        using var c = Open();
        using var cmd = Command(c, null, """
            UPDATE assignments SET state = $f, reason = $why
            WHERE experiment_id = $e AND round = $r AND client_id = $c AND state = $a
            """,
            ("$f", AssignmentState.Failed.ToString()), ("$why", reason), ("$e", experimentId), ("$r", round), ("$c", clientId),
            ("$a", AssignmentState.Assigned.ToString()));
        return cmd.ExecuteNonQuery() == 1;
    }

    public void RecordRejection(string? experimentId, int? round, string? clientId, string reason, long bytes, DateTimeOffset atUtc)
    {
        using var c = Open();
        Execute(c, null, "INSERT INTO rejections (experiment_id, round, client_id, reason, bytes, at_utc) VALUES ($e, $r, $c, $why, $n, $t)",
            ("$e", experimentId), ("$r", round), ("$c", clientId), ("$why", reason), ("$n", bytes), ("$t", Iso(atUtc)));
    }

    public long CountRejections(string? experimentId = null)
    {
        using var c = Open();
        return experimentId is null
            ? Scalar<long>(c, null, "SELECT COUNT(*) FROM rejections")
            : Scalar<long>(c, null, "SELECT COUNT(*) FROM rejections WHERE experiment_id = $e", ("$e", experimentId));
    }

    /// <summary>The packets received so far in a round, in client-id order (deterministic aggregation).</summary>
    public IReadOnlyList<(string ClientId, byte[] Packet)> GetPackets(string experimentId, int round)
    {
        using var c = Open();
        using var cmd = Command(c, null, """
            SELECT client_id, packet FROM assignments WHERE experiment_id = $e AND round = $r AND state = $s ORDER BY client_id
            """, ("$e", experimentId), ("$r", round), ("$s", AssignmentState.Received.ToString()));
        using var rd = cmd.ExecuteReader();
        var list = new List<(string, byte[])>();
        while (rd.Read())
            list.Add((rd.GetString(0), (byte[])rd.GetValue(1)));
        return list;
    }

    /// <summary>
    /// Completes a round in one transaction: the global update and the aggregator's new state are stored,
    /// silent clients are marked missed, and the experiment completes after its last round.
    /// </summary>
    public void CompleteRound(string experimentId, int round, byte[] globalUpdate, byte[]? serverState, string? metricsJson, DateTimeOffset closedUtc)
    {
        ArgumentNullException.ThrowIfNull(globalUpdate);
        using var c = Open();
        using var tx = c.BeginTransaction();
        var state = Scalar<string?>(c, tx, "SELECT state FROM rounds WHERE experiment_id = $e AND round = $r", ("$e", experimentId), ("$r", round));
        if (state != RoundState.Open.ToString())
            throw new InvalidOperationException($"Round {round} of experiment '{experimentId}' is {state ?? "unknown"}, not open.");
        Execute(c, tx, "UPDATE assignments SET state = $m WHERE experiment_id = $e AND round = $r AND state = $a",
            ("$m", AssignmentState.Missed.ToString()), ("$e", experimentId), ("$r", round), ("$a", AssignmentState.Assigned.ToString()));
        long aggregated = Scalar<long>(c, tx, "SELECT COUNT(*) FROM assignments WHERE experiment_id = $e AND round = $r AND state = $s",
            ("$e", experimentId), ("$r", round), ("$s", AssignmentState.Received.ToString()));
        long missing = Scalar<long>(c, tx, "SELECT COUNT(*) FROM assignments WHERE experiment_id = $e AND round = $r AND state <> $s",
            ("$e", experimentId), ("$r", round), ("$s", AssignmentState.Received.ToString()));
        Execute(c, tx, """
            UPDATE rounds SET state = $s, closed_utc = $t, global_update = $g, aggregated = $a, missing = $m, metrics = $x
            WHERE experiment_id = $e AND round = $r
            """,
            ("$s", RoundState.Completed.ToString()), ("$t", Iso(closedUtc)), ("$g", globalUpdate), ("$a", aggregated), ("$m", missing),
            ("$x", metricsJson), ("$e", experimentId), ("$r", round));
        Execute(c, tx, "UPDATE experiments SET server_state = $st WHERE id = $e", ("$st", serverState), ("$e", experimentId));
        long total = Scalar<long>(c, tx, "SELECT rounds FROM experiments WHERE id = $e", ("$e", experimentId));
        if (round >= total)
        {
            Execute(c, tx, "UPDATE experiments SET state = $s, ended_utc = $t WHERE id = $e",
                ("$s", ExperimentState.Completed.ToString()), ("$t", Iso(closedUtc)), ("$e", experimentId));
        }
        tx.Commit();
    }

    /// <summary>Closes a round without a global update (nobody answered); the model stays as it was.</summary>
    public void AbandonRound(string experimentId, int round, string reason, DateTimeOffset closedUtc)
    {
        using var c = Open();
        using var tx = c.BeginTransaction();
        Execute(c, tx, "UPDATE assignments SET state = $m, reason = COALESCE(reason, $why) WHERE experiment_id = $e AND round = $r AND state = $a",
            ("$m", AssignmentState.Missed.ToString()), ("$why", reason), ("$e", experimentId), ("$r", round), ("$a", AssignmentState.Assigned.ToString()));
        Execute(c, tx, "UPDATE rounds SET state = $s, closed_utc = $t, metrics = $why WHERE experiment_id = $e AND round = $r AND state = $o",
            ("$s", RoundState.Abandoned.ToString()), ("$t", Iso(closedUtc)), ("$why", reason), ("$e", experimentId), ("$r", round),
            ("$o", RoundState.Open.ToString()));
        tx.Commit();
    }

    public RoundRecord? GetRound(string experimentId, int round)
    {
        using var c = Open();
        using var cmd = Command(c, null, $"SELECT {RoundColumns} FROM rounds WHERE experiment_id = $e AND round = $r", ("$e", experimentId), ("$r", round));
        using var rd = cmd.ExecuteReader();
        return rd.Read() ? ReadRound(rd) : null;
    }

    /// <summary>
    /// Where an experiment's rounds stand, in two indexed queries (the round engine asks on every tick): its
    /// open round if any (without its update), the highest round number, and the last completed round.
    /// </summary>
    public RoundProgress GetProgress(string experimentId)
    {
        using var c = Open();
        RoundRecord? open;
        var cols = RoundColumns.Replace("global_update", "NULL", StringComparison.Ordinal);
        using (var cmd = Command(c, null, $"SELECT {cols} FROM rounds WHERE experiment_id = $e AND state = $o ORDER BY round DESC LIMIT 1",
            ("$e", experimentId), ("$o", RoundState.Open.ToString())))
        using (var rd = cmd.ExecuteReader())
            open = rd.Read() ? ReadRound(rd) : null;
        using var stats = Command(c, null,
            "SELECT COALESCE(MAX(round), 0), COALESCE(MAX(CASE WHEN state = $done THEN round END), 0) FROM rounds WHERE experiment_id = $e",
            ("$e", experimentId), ("$done", RoundState.Completed.ToString()));
        using var r = stats.ExecuteReader();
        r.Read();
        return new RoundProgress(open, r.GetInt32(0), r.GetInt32(1));
    }

    public IReadOnlyList<RoundRecord> GetRounds(string experimentId, bool includeUpdates = false)
    {
        using var c = Open();
        var cols = includeUpdates ? RoundColumns : RoundColumns.Replace("global_update", "NULL", StringComparison.Ordinal);
        using var cmd = Command(c, null, $"SELECT {cols} FROM rounds WHERE experiment_id = $e ORDER BY round", ("$e", experimentId));
        using var rd = cmd.ExecuteReader();
        var list = new List<RoundRecord>();
        while (rd.Read())
            list.Add(ReadRound(rd));
        return list;
    }

    /// <summary>The completed global updates after <paramref name="afterRound"/>, in order: what a lagging client replays.</summary>
    public IReadOnlyList<(int Round, byte[] GlobalUpdate)> GetGlobalUpdates(string experimentId, int afterRound)
    {
        using var c = Open();
        using var cmd = Command(c, null, """
            SELECT round, global_update FROM rounds WHERE experiment_id = $e AND round > $r AND state = $s ORDER BY round
            """, ("$e", experimentId), ("$r", afterRound), ("$s", RoundState.Completed.ToString()));
        using var rd = cmd.ExecuteReader();
        var list = new List<(int, byte[])>();
        while (rd.Read())
            list.Add((rd.GetInt32(0), (byte[])rd.GetValue(1)));
        return list;
    }

    public IReadOnlyList<AssignmentRecord> GetAssignments(string experimentId, int round)
    {
        using var c = Open();
        using var cmd = Command(c, null, """
            SELECT experiment_id, round, client_id, state, packet_sha256, packet_bytes, received_utc, reason, train_loss
            FROM assignments WHERE experiment_id = $e AND round = $r ORDER BY client_id
            """, ("$e", experimentId), ("$r", round));
        using var rd = cmd.ExecuteReader();
        var list = new List<AssignmentRecord>();
        while (rd.Read())
        {
            list.Add(new AssignmentRecord(rd.GetString(0), rd.GetInt32(1), rd.GetString(2), Enum.Parse<AssignmentState>(rd.GetString(3)),
                rd.IsDBNull(4) ? null : rd.GetString(4), rd.GetInt64(5), rd.IsDBNull(6) ? null : ParseIso(rd.GetString(6)),
                rd.IsDBNull(7) ? null : rd.GetString(7), rd.IsDBNull(8) ? null : rd.GetDouble(8)));
        }
        return list;
    }

    // ---- fingerprints ------------------------------------------------------------------------------

    /// <summary>Stores a reported fingerprint (the first report of a client for a round wins).</summary>
    public void RecordFingerprint(FingerprintRecord f)
    {
        ArgumentNullException.ThrowIfNull(f);
        using var c = Open();
        Execute(c, null, """
            INSERT OR IGNORE INTO fingerprints (experiment_id, round, client_id, fingerprint, reported_utc) VALUES ($e, $r, $c, $f, $t)
            """, ("$e", f.ExperimentId), ("$r", f.Round), ("$c", f.ClientId), ("$f", f.Fingerprint), ("$t", Iso(f.ReportedUtc)));
    }

    public IReadOnlyList<FingerprintRecord> GetFingerprints(string experimentId, int round)
    {
        using var c = Open();
        using var cmd = Command(c, null, """
            SELECT experiment_id, round, client_id, fingerprint, reported_utc FROM fingerprints
            WHERE experiment_id = $e AND round = $r ORDER BY client_id
            """, ("$e", experimentId), ("$r", round));
        using var rd = cmd.ExecuteReader();
        var list = new List<FingerprintRecord>();
        while (rd.Read())
            list.Add(new FingerprintRecord(rd.GetString(0), rd.GetInt32(1), rd.GetString(2), rd.GetString(3), ParseIso(rd.GetString(4))));
        return list;
    }

    // ---- plumbing ----------------------------------------------------------------------------------

    private const string ExperimentColumns = "id, name, algorithm, descriptor, state, rounds, artifact_fingerprint, created_utc, ended_utc";
    private const string RoundColumns = "experiment_id, round, state, opened_utc, deadline_utc, closed_utc, global_update, aggregated, missing, metrics";

    private static ExperimentRecord ReadExperiment(SqliteDataReader r) => new(
        r.GetString(0), r.GetString(1), r.GetString(2), (byte[])r.GetValue(3), Enum.Parse<ExperimentState>(r.GetString(4)),
        r.GetInt32(5), r.GetString(6), ParseIso(r.GetString(7)), r.IsDBNull(8) ? null : ParseIso(r.GetString(8)));

    private static ClientRecord ReadClient(SqliteDataReader r) => new(
        r.GetString(0), r.GetString(1), ParseIso(r.GetString(2)), r.IsDBNull(3) ? null : r.GetString(3), r.GetInt64(4) != 0);

    private static RoundRecord ReadRound(SqliteDataReader r) => new(
        r.GetString(0), r.GetInt32(1), Enum.Parse<RoundState>(r.GetString(2)), ParseIso(r.GetString(3)), ParseIso(r.GetString(4)),
        r.IsDBNull(5) ? null : ParseIso(r.GetString(5)), r.IsDBNull(6) ? null : (byte[])r.GetValue(6), r.GetInt32(7), r.GetInt32(8),
        r.IsDBNull(9) ? null : r.GetString(9));

    private static string? Iso(DateTimeOffset? t) => t?.ToUniversalTime().ToString("O", CultureInfo.InvariantCulture);

    private static DateTimeOffset ParseIso(string s) => DateTimeOffset.Parse(s, CultureInfo.InvariantCulture, DateTimeStyles.RoundtripKind);

    private static SqliteCommand Command(SqliteConnection c, SqliteTransaction? tx, string sql, params (string Name, object? Value)[] args)
    {
        var cmd = c.CreateCommand();
        cmd.Transaction = tx;
#pragma warning disable CA2100 // SQL text is a constant of this class; values always travel as parameters.
        cmd.CommandText = sql;
#pragma warning restore CA2100
        foreach (var (name, value) in args)
            cmd.Parameters.AddWithValue(name, value ?? DBNull.Value);
        return cmd;
    }

    private static void Execute(SqliteConnection c, SqliteTransaction? tx, string sql, params (string Name, object? Value)[] args)
    {
        using var cmd = Command(c, tx, sql, args);
        cmd.ExecuteNonQuery();
    }

    private static T Scalar<T>(SqliteConnection c, SqliteTransaction? tx, string sql, params (string Name, object? Value)[] args)
    {
        using var cmd = Command(c, tx, sql, args);
        var v = cmd.ExecuteScalar();
        return v is null or DBNull ? default! : (T)v;
    }
}
