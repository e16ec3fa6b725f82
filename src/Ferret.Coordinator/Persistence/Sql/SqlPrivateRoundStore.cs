namespace Ferret.Coordinator.Persistence.Sql;

/// <summary>The private-round store in the round log's database (SQLite or PostgreSQL, same SQL; tables of schema version 3).</summary>
public sealed class SqlPrivateRoundStore(SqlDatabase db) : IPrivateRoundStore
{
    public void OpenRound(PrivateRoundRecord record)
    {
        ArgumentNullException.ThrowIfNull(record);
        using var c = db.Open();
        using var tx = c.BeginTransaction();
        db.Execute(c, tx, """
            INSERT INTO private_rounds (experiment_id, round, eligible, assigned, clip_norm, stage, stage_deadline_utc)
            VALUES (@e, @r, @el, @a, @clip, @s, @d)
            ON CONFLICT (experiment_id, round) DO UPDATE SET eligible = EXCLUDED.eligible, assigned = EXCLUDED.assigned,
                clip_norm = EXCLUDED.clip_norm, stage = EXCLUDED.stage, stage_deadline_utc = EXCLUDED.stage_deadline_utc
            """, ("e", record.ExperimentId), ("r", record.Round), ("el", record.Eligible), ("a", record.Assigned), ("clip", record.ClipNorm),
            ("s", record.Stage.ToString()), ("d", db.Time(record.StageDeadlineUtc)));
        db.Execute(c, tx, "DELETE FROM private_round_messages WHERE experiment_id = @e AND round = @r", ("e", record.ExperimentId), ("r", record.Round));
        tx.Commit();
    }

    public PrivateRoundRecord? GetRound(string experimentId, int round)
    {
        using var c = db.Open();
        return db.Query(c, null, "SELECT eligible, assigned, clip_norm, stage, stage_deadline_utc FROM private_rounds WHERE experiment_id = @e AND round = @r",
            r => new PrivateRoundRecord(experimentId, round, r.GetInt32(0), r.GetInt32(1), r.GetDouble(2), Enum.Parse<PrivateStage>(r.GetString(3)), db.ReadTime(r, 4)),
            ("e", experimentId), ("r", round)).SingleOrDefault();
    }

    public bool AdvanceStage(string experimentId, int round, PrivateStage from, PrivateStage to, DateTimeOffset deadlineUtc)
    {
        using var c = db.Open();
        // Waits for any message of the old stage being recorded (it holds the round's row), so none lands after the freeze.
        return db.Execute(c, null, "UPDATE private_rounds SET stage = @to, stage_deadline_utc = @d WHERE experiment_id = @e AND round = @r AND stage = @from",
            ("to", to.ToString()), ("d", db.Time(deadlineUtc)), ("e", experimentId), ("r", round), ("from", from.ToString())) == 1;
    }

    public StageMessageOutcome RecordMessage(string experimentId, int round, string clientId, PrivateStage stage, byte[] payload, DateTimeOffset receivedUtc)
    {
        ArgumentNullException.ThrowIfNull(payload);
        using var c = db.Open();
        using var tx = c.BeginTransaction();
        var current = db.Scalar(c, tx, $"SELECT stage FROM private_rounds WHERE experiment_id = @e AND round = @r{db.ForShare}",
            ("e", experimentId), ("r", round)) as string;
        if (current is null)
            return StageMessageOutcome.NoSuchRound;
        if (current != stage.ToString())
            return StageMessageOutcome.WrongStage;
        int stored = db.Execute(c, tx, """
            INSERT INTO private_round_messages (experiment_id, round, client_id, stage, payload, received_utc) VALUES (@e, @r, @c, @s, @p, @t)
            ON CONFLICT DO NOTHING
            """, ("e", experimentId), ("r", round), ("c", clientId), ("s", stage.ToString()), ("p", payload), ("t", db.Time(receivedUtc)));
        if (stored == 0)
            return StageMessageOutcome.Duplicate;
        tx.Commit();
        return StageMessageOutcome.Accepted;
    }

    public IReadOnlyDictionary<string, byte[]> GetMessages(string experimentId, int round, PrivateStage stage)
    {
        using var c = db.Open();
        return db.Query(c, null, "SELECT client_id, payload FROM private_round_messages WHERE experiment_id = @e AND round = @r AND stage = @s ORDER BY client_id",
            r => (Client: r.GetString(0), Payload: (byte[])r.GetValue(1)), ("e", experimentId), ("r", round), ("s", stage.ToString()))
            .ToDictionary(m => m.Client, m => m.Payload, StringComparer.Ordinal);
    }

    public byte[]? GetMessage(string experimentId, int round, PrivateStage stage, string clientId)
    {
        using var c = db.Open();
        return db.Scalar(c, null, "SELECT payload FROM private_round_messages WHERE experiment_id = @e AND round = @r AND stage = @s AND client_id = @c",
            ("e", experimentId), ("r", round), ("s", stage.ToString()), ("c", clientId)) as byte[];
    }

    public IReadOnlySet<string> Answered(string experimentId, int round, PrivateStage stage)
    {
        using var c = db.Open();
        return db.Query(c, null, "SELECT client_id FROM private_round_messages WHERE experiment_id = @e AND round = @r AND stage = @s",
            r => r.GetString(0), ("e", experimentId), ("r", round), ("s", stage.ToString())).ToHashSet(StringComparer.Ordinal);
    }

    public long MessageBytes(string experimentId, int round)
    {
        using var c = db.Open();
        return db.Count(c, null, "SELECT COALESCE(SUM(LENGTH(payload)), 0) FROM private_round_messages WHERE experiment_id = @e AND round = @r",
            ("e", experimentId), ("r", round));
    }
}
