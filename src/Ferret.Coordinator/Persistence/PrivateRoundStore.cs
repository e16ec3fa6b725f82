using System.Globalization;
using Microsoft.Data.Sqlite;

namespace Ferret.Coordinator.Persistence;

/// <summary>Where a private round stands: clients in the clear (central DP only), one of the four secure stages, or closed.</summary>
public enum PrivateStage
{
    /// <summary>Differential privacy without secure aggregation: packets arrive as usual and are clipped and noised at aggregation.</summary>
    Packets,
    AdvertiseKeys,
    ShareKeys,
    MaskedInput,
    Unmasking,

    /// <summary>No further stage message is accepted (the round is being unmasked, or is over).</summary>
    Closed,
}

/// <summary>
/// What a private round fixed when it opened (the clients it was drawn from, the clip norm) and the secure
/// stage it is in, with that stage's deadline.
/// </summary>
public sealed record PrivateRoundRecord(string ExperimentId, int Round, int Eligible, int Assigned, double ClipNorm, PrivateStage Stage, DateTimeOffset StageDeadlineUtc);

/// <summary>What became of a stage message that reached the store.</summary>
public enum StageMessageOutcome
{
    Accepted,
    Duplicate,
    WrongStage,
    NoSuchRound,
}

/// <summary>
/// The durable part of private aggregation, beside the round log: per round the plan's public numbers and the
/// current secure stage, and the stage messages exactly as clients sent them (public keys, encrypted shares
/// with their commitments, revealed shares). Masked inputs are packets and live in the round log. Nothing here
/// is secret from the coordinator by design: it stores only what the protocol lets it see.
/// </summary>
public interface IPrivateRoundStore
{
    /// <summary>Records a private round before it opens (a record for a round that never opened is harmless and replaced).</summary>
    void OpenRound(PrivateRoundRecord record);

    PrivateRoundRecord? GetRound(string experimentId, int round);

    /// <summary>Moves a round from <paramref name="from"/> to <paramref name="to"/>; false when it was not at <paramref name="from"/>. After it returns, no message of the old stage is accepted.</summary>
    bool AdvanceStage(string experimentId, int round, PrivateStage from, PrivateStage to, DateTimeOffset deadlineUtc);

    /// <summary>Stores a client's message for a stage if the round is at that stage and the client has not sent one: decided atomically.</summary>
    StageMessageOutcome RecordMessage(string experimentId, int round, string clientId, PrivateStage stage, byte[] payload, DateTimeOffset receivedUtc);

    /// <summary>The messages of a stage, by client.</summary>
    IReadOnlyDictionary<string, byte[]> GetMessages(string experimentId, int round, PrivateStage stage);

    /// <summary>One client's message of a stage, or null.</summary>
    byte[]? GetMessage(string experimentId, int round, PrivateStage stage, string clientId);

    /// <summary>Who has sent a message of a stage (without the messages: the engine asks on every step).</summary>
    IReadOnlySet<string> Answered(string experimentId, int round, PrivateStage stage);

    /// <summary>Bytes of all stage messages of a round.</summary>
    long MessageBytes(string experimentId, int round);
}

/// <summary>The SQLite private-round store, in the round log's database file (its own two tables).</summary>
public sealed class SqlitePrivateRoundStore : IPrivateRoundStore
{
    private readonly string _connectionString;

    public SqlitePrivateRoundStore(string databasePath)
    {
        ArgumentException.ThrowIfNullOrEmpty(databasePath);
        _connectionString = new SqliteConnectionStringBuilder
        {
            DataSource = Path.GetFullPath(databasePath),
            Mode = SqliteOpenMode.ReadWriteCreate,
            Pooling = true,
            DefaultTimeout = 30,
        }.ToString();
        using var c = Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = """
            CREATE TABLE IF NOT EXISTS private_rounds (
                experiment_id TEXT NOT NULL, round INTEGER NOT NULL, eligible INTEGER NOT NULL, assigned INTEGER NOT NULL,
                clip_norm REAL NOT NULL, stage TEXT NOT NULL, stage_deadline_utc TEXT NOT NULL,
                PRIMARY KEY (experiment_id, round));
            CREATE TABLE IF NOT EXISTS private_round_messages (
                experiment_id TEXT NOT NULL, round INTEGER NOT NULL, client_id TEXT NOT NULL, stage TEXT NOT NULL,
                payload BLOB NOT NULL, received_utc TEXT NOT NULL,
                PRIMARY KEY (experiment_id, round, stage, client_id));
            """;
        cmd.ExecuteNonQuery();
    }

    private SqliteConnection Open()
    {
        var c = new SqliteConnection(_connectionString);
        c.Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = "PRAGMA synchronous = FULL; PRAGMA busy_timeout = 30000;";
        cmd.ExecuteNonQuery();
        return c;
    }

    public void OpenRound(PrivateRoundRecord record)
    {
        ArgumentNullException.ThrowIfNull(record);
        using var c = Open();
        Execute(c, null, """
            INSERT OR REPLACE INTO private_rounds (experiment_id, round, eligible, assigned, clip_norm, stage, stage_deadline_utc)
            VALUES ($e, $r, $el, $a, $clip, $s, $d)
            """, ("$e", record.ExperimentId), ("$r", record.Round), ("$el", record.Eligible), ("$a", record.Assigned), ("$clip", record.ClipNorm),
            ("$s", record.Stage.ToString()), ("$d", Iso(record.StageDeadlineUtc)));
        Execute(c, null, "DELETE FROM private_round_messages WHERE experiment_id = $e AND round = $r", ("$e", record.ExperimentId), ("$r", record.Round));
    }

    public PrivateRoundRecord? GetRound(string experimentId, int round)
    {
        using var c = Open();
        using var cmd = Command(c, null, """
            SELECT eligible, assigned, clip_norm, stage, stage_deadline_utc FROM private_rounds WHERE experiment_id = $e AND round = $r
            """, ("$e", experimentId), ("$r", round));
        using var rd = cmd.ExecuteReader();
        return rd.Read()
            ? new PrivateRoundRecord(experimentId, round, rd.GetInt32(0), rd.GetInt32(1), rd.GetDouble(2), Enum.Parse<PrivateStage>(rd.GetString(3)), ParseIso(rd.GetString(4)))
            : null;
    }

    public bool AdvanceStage(string experimentId, int round, PrivateStage from, PrivateStage to, DateTimeOffset deadlineUtc)
    {
        using var c = Open();
        using var cmd = Command(c, null, """
            UPDATE private_rounds SET stage = $to, stage_deadline_utc = $d WHERE experiment_id = $e AND round = $r AND stage = $from
            """, ("$to", to.ToString()), ("$d", Iso(deadlineUtc)), ("$e", experimentId), ("$r", round), ("$from", from.ToString()));
        return cmd.ExecuteNonQuery() == 1;
    }

    public StageMessageOutcome RecordMessage(string experimentId, int round, string clientId, PrivateStage stage, byte[] payload, DateTimeOffset receivedUtc)
    {
        ArgumentNullException.ThrowIfNull(payload);
        using var c = Open();
        using var tx = c.BeginTransaction();
        string? current;
        using (var cmd = Command(c, tx, "SELECT stage FROM private_rounds WHERE experiment_id = $e AND round = $r", ("$e", experimentId), ("$r", round)))
            current = cmd.ExecuteScalar() as string;
        if (current is null)
            return StageMessageOutcome.NoSuchRound;
        if (current != stage.ToString())
            return StageMessageOutcome.WrongStage;
        using (var insert = Command(c, tx, """
            INSERT OR IGNORE INTO private_round_messages (experiment_id, round, client_id, stage, payload, received_utc) VALUES ($e, $r, $c, $s, $p, $t)
            """, ("$e", experimentId), ("$r", round), ("$c", clientId), ("$s", stage.ToString()), ("$p", payload), ("$t", Iso(receivedUtc))))
        {
            if (insert.ExecuteNonQuery() == 0)
                return StageMessageOutcome.Duplicate;
        }
        tx.Commit();
        return StageMessageOutcome.Accepted;
    }

    public IReadOnlyDictionary<string, byte[]> GetMessages(string experimentId, int round, PrivateStage stage)
    {
        using var c = Open();
        using var cmd = Command(c, null, """
            SELECT client_id, payload FROM private_round_messages WHERE experiment_id = $e AND round = $r AND stage = $s ORDER BY client_id
            """, ("$e", experimentId), ("$r", round), ("$s", stage.ToString()));
        using var rd = cmd.ExecuteReader();
        var messages = new Dictionary<string, byte[]>(StringComparer.Ordinal);
        while (rd.Read())
            messages[rd.GetString(0)] = (byte[])rd.GetValue(1);
        return messages;
    }

    public byte[]? GetMessage(string experimentId, int round, PrivateStage stage, string clientId)
    {
        using var c = Open();
        using var cmd = Command(c, null,
            "SELECT payload FROM private_round_messages WHERE experiment_id = $e AND round = $r AND stage = $s AND client_id = $c",
            ("$e", experimentId), ("$r", round), ("$s", stage.ToString()), ("$c", clientId));
        return cmd.ExecuteScalar() as byte[];
    }

    public IReadOnlySet<string> Answered(string experimentId, int round, PrivateStage stage)
    {
        using var c = Open();
        using var cmd = Command(c, null, "SELECT client_id FROM private_round_messages WHERE experiment_id = $e AND round = $r AND stage = $s",
            ("$e", experimentId), ("$r", round), ("$s", stage.ToString()));
        using var rd = cmd.ExecuteReader();
        var ids = new HashSet<string>(StringComparer.Ordinal);
        while (rd.Read())
            ids.Add(rd.GetString(0));
        return ids;
    }

    public long MessageBytes(string experimentId, int round)
    {
        using var c = Open();
        using var cmd = Command(c, null, "SELECT COALESCE(SUM(LENGTH(payload)), 0) FROM private_round_messages WHERE experiment_id = $e AND round = $r",
            ("$e", experimentId), ("$r", round));
        return (long)cmd.ExecuteScalar()!;
    }

    private static string Iso(DateTimeOffset t) => t.ToUniversalTime().ToString("O", CultureInfo.InvariantCulture);

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
}
