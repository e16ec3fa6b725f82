using Microsoft.Data.Sqlite;

namespace Ferret.Coordinator.Persistence;

/// <summary>
/// A dashboard credential minted by an admin: an observer key (read-only), or an admin session redeemed from a
/// one-time sign-in link. Only its SHA-256 is stored.
/// </summary>
public sealed record AccessKeyRecord(string Id, string Label, string Role, DateTimeOffset CreatedUtc, DateTimeOffset? ExpiresUtc, bool Revoked);

/// <summary>A packet turned away at the door, as the rejection log keeps it.</summary>
public sealed record RejectionRecord(long Id, int? Round, string? ClientId, string Reason, long Bytes, DateTimeOffset AtUtc);

/// <summary>
/// One client's part in one experiment, summed over its assignments: the last round it was given, how often
/// it delivered, its last failure or miss (with the reason) and the last fingerprint it reported.
/// </summary>
public sealed record ExperimentClientRecord(
    string Id, string Name, string? Capabilities, bool Revoked, int? LastRound, AssignmentState? LastState, int Delivered, int Failures,
    int? LastFailureRound, AssignmentState? LastFailureState, string? LastFailureReason, int? FingerprintRound, string? Fingerprint, long Rejections);

/// <summary>What dashboards use: access keys and one-time sign-in codes, the rejection log, and each experiment's clients.</summary>
public sealed partial class RoundLog
{
    private const string AccessKeysSchema = """
        CREATE TABLE access_keys (
            id TEXT PRIMARY KEY, label TEXT NOT NULL, role TEXT NOT NULL, key_sha256 TEXT NOT NULL UNIQUE, created_utc TEXT NOT NULL,
            expires_utc TEXT, revoked INTEGER NOT NULL DEFAULT 0);
        CREATE TABLE sign_in_codes (
            code_sha256 TEXT PRIMARY KEY, role TEXT NOT NULL, label TEXT NOT NULL, created_utc TEXT NOT NULL, expires_utc TEXT NOT NULL,
            key_id TEXT REFERENCES access_keys(id));
        CREATE INDEX rejections_by_experiment ON rejections (experiment_id, id);
        """;

    public void AddAccessKey(AccessKeyRecord key, string keySha256)
    {
        ArgumentNullException.ThrowIfNull(key);
        using var c = Open();
        InsertAccessKey(c, null, key, keySha256);
    }

    public AccessKeyRecord? FindAccessKey(string keySha256)
    {
        using var c = Open();
        using var cmd = Command(c, null, $"SELECT {AccessKeyColumns} FROM access_keys WHERE key_sha256 = $k", ("$k", keySha256));
        using var r = cmd.ExecuteReader();
        return r.Read() ? ReadAccessKey(r) : null;
    }

    public IReadOnlyList<AccessKeyRecord> ListAccessKeys()
    {
        using var c = Open();
        using var cmd = Command(c, null, $"SELECT {AccessKeyColumns} FROM access_keys ORDER BY created_utc, id");
        using var r = cmd.ExecuteReader();
        var list = new List<AccessKeyRecord>();
        while (r.Read())
            list.Add(ReadAccessKey(r));
        return list;
    }

    public bool RevokeAccessKey(string id)
    {
        using var c = Open();
        using var cmd = Command(c, null, "UPDATE access_keys SET revoked = 1 WHERE id = $id", ("$id", id));
        return cmd.ExecuteNonQuery() == 1;
    }

    public void AddSignInCode(string codeSha256, string role, string label, DateTimeOffset createdUtc, DateTimeOffset expiresUtc)
    {
        using var c = Open();
        Execute(c, null, "INSERT INTO sign_in_codes (code_sha256, role, label, created_utc, expires_utc) VALUES ($h, $r, $l, $c, $x)",
            ("$h", codeSha256), ("$r", role), ("$l", label), ("$c", Iso(createdUtc)), ("$x", Iso(expiresUtc)));
    }

    /// <summary>
    /// Spends a one-time sign-in code and stores the access key it buys, in one transaction; <paramref name="mint"/>
    /// makes the key (and its SHA-256) from the code's role and label. Null when the code is unknown, expired or already spent.
    /// </summary>
    public AccessKeyRecord? RedeemSignInCode(string codeSha256, DateTimeOffset nowUtc, Func<string, string, (AccessKeyRecord Key, string KeySha256)> mint)
    {
        ArgumentNullException.ThrowIfNull(mint);
        using var c = Open();
        using var tx = c.BeginTransaction();
        string? role, label, expires;
        using (var cmd = Command(c, tx, "SELECT role, label, expires_utc FROM sign_in_codes WHERE code_sha256 = $h AND key_id IS NULL", ("$h", codeSha256)))
        using (var r = cmd.ExecuteReader())
        {
            if (!r.Read())
                return null;
            (role, label, expires) = (r.GetString(0), r.GetString(1), r.GetString(2));
        }
        if (ParseIso(expires) <= nowUtc)
            return null;
        var (key, keySha256) = mint(role, label);
        InsertAccessKey(c, tx, key, keySha256);
        Execute(c, tx, "UPDATE sign_in_codes SET key_id = $k WHERE code_sha256 = $h", ("$k", key.Id), ("$h", codeSha256));
        tx.Commit();
        return key;
    }

    /// <summary>The newest rejections of an experiment first, at most <paramref name="limit"/>.</summary>
    public IReadOnlyList<RejectionRecord> GetRejections(string experimentId, int limit)
    {
        using var c = Open();
        using var cmd = Command(c, null, """
            SELECT id, round, client_id, reason, bytes, at_utc FROM rejections WHERE experiment_id = $e ORDER BY id DESC LIMIT $n
            """, ("$e", experimentId), ("$n", limit));
        using var r = cmd.ExecuteReader();
        var list = new List<RejectionRecord>();
        while (r.Read())
        {
            list.Add(new RejectionRecord(r.GetInt64(0), r.IsDBNull(1) ? null : r.GetInt32(1), r.IsDBNull(2) ? null : r.GetString(2), r.GetString(3),
                r.GetInt64(4), ParseIso(r.GetString(5))));
        }
        return list;
    }

    /// <summary>
    /// The clients of an experiment: every client the log has assigned or heard a fingerprint from, plus
    /// <paramref name="alsoInclude"/> (those connected now that have not been assigned yet), in id order.
    /// </summary>
    public IReadOnlyList<ExperimentClientRecord> GetExperimentClients(string experimentId, IEnumerable<string> alsoInclude)
    {
        ArgumentNullException.ThrowIfNull(alsoInclude);
        using var c = Open();
        using var cmd = Command(c, null, """
            WITH mine AS (SELECT client_id, round, state, reason FROM assignments WHERE experiment_id = $e),
                 trouble AS (SELECT client_id, round, state, reason FROM mine WHERE state IN ($failed, $missed))
            SELECT c.id, c.name, c.capabilities, c.revoked,
                (SELECT MAX(round) FROM mine WHERE client_id = c.id),
                (SELECT state FROM mine WHERE client_id = c.id ORDER BY round DESC LIMIT 1),
                (SELECT COUNT(*) FROM mine WHERE client_id = c.id AND state = $received),
                (SELECT COUNT(*) FROM trouble WHERE client_id = c.id),
                (SELECT round FROM trouble WHERE client_id = c.id ORDER BY round DESC LIMIT 1),
                (SELECT state FROM trouble WHERE client_id = c.id ORDER BY round DESC LIMIT 1),
                (SELECT reason FROM trouble WHERE client_id = c.id ORDER BY round DESC LIMIT 1),
                (SELECT round FROM fingerprints f WHERE f.experiment_id = $e AND f.client_id = c.id ORDER BY round DESC LIMIT 1),
                (SELECT fingerprint FROM fingerprints f WHERE f.experiment_id = $e AND f.client_id = c.id ORDER BY round DESC LIMIT 1),
                (SELECT COUNT(*) FROM rejections j WHERE j.experiment_id = $e AND j.client_id = c.id)
            FROM clients c
            WHERE c.id IN (SELECT client_id FROM mine UNION SELECT client_id FROM fingerprints WHERE experiment_id = $e
                           UNION SELECT value FROM json_each($extra))
            ORDER BY c.id
            """,
            ("$e", experimentId), ("$failed", nameof(AssignmentState.Failed)), ("$missed", nameof(AssignmentState.Missed)),
            ("$received", nameof(AssignmentState.Received)), ("$extra", System.Text.Json.JsonSerializer.Serialize(alsoInclude.ToArray())));
        using var r = cmd.ExecuteReader();
        var list = new List<ExperimentClientRecord>();
        while (r.Read())
        {
            list.Add(new ExperimentClientRecord(r.GetString(0), r.GetString(1), r.IsDBNull(2) ? null : r.GetString(2), r.GetInt64(3) != 0,
                r.IsDBNull(4) ? null : r.GetInt32(4), r.IsDBNull(5) ? null : Enum.Parse<AssignmentState>(r.GetString(5)), r.GetInt32(6), r.GetInt32(7),
                r.IsDBNull(8) ? null : r.GetInt32(8), r.IsDBNull(9) ? null : Enum.Parse<AssignmentState>(r.GetString(9)), r.IsDBNull(10) ? null : r.GetString(10),
                r.IsDBNull(11) ? null : r.GetInt32(11), r.IsDBNull(12) ? null : r.GetString(12), r.GetInt64(13)));
        }
        return list;
    }

    /// <summary>The latest round any participant reported a fingerprint for, with every report of that round.</summary>
    public IReadOnlyList<FingerprintRecord> GetLatestFingerprints(string experimentId)
    {
        using var c = Open();
        var round = Scalar<long?>(c, null, "SELECT MAX(round) FROM fingerprints WHERE experiment_id = $e", ("$e", experimentId));
        return round is long latest ? GetFingerprints(experimentId, (int)latest) : [];
    }

    private const string AccessKeyColumns = "id, label, role, created_utc, expires_utc, revoked";

    private static void InsertAccessKey(SqliteConnection c, SqliteTransaction? tx, AccessKeyRecord key, string keySha256) =>
        Execute(c, tx, "INSERT INTO access_keys (id, label, role, key_sha256, created_utc, expires_utc, revoked) VALUES ($id, $l, $r, $k, $c, $x, 0)",
            ("$id", key.Id), ("$l", key.Label), ("$r", key.Role), ("$k", keySha256), ("$c", Iso(key.CreatedUtc)), ("$x", Iso(key.ExpiresUtc)));

    private static AccessKeyRecord ReadAccessKey(SqliteDataReader r) => new(
        r.GetString(0), r.GetString(1), r.GetString(2), ParseIso(r.GetString(3)), r.IsDBNull(4) ? null : ParseIso(r.GetString(4)), r.GetInt64(5) != 0);
}
