using Ferret.Coordinator.Persistence.Sql;
using Ferret.Coordinator.Rounds;

namespace Ferret.Coordinator.ScaleOut;

/// <summary>
/// The participants of every instance sharing a PostgreSQL round log: each instance records its own joined
/// connections, and an experiment's owner samples from all of them, counting only instances whose heartbeat
/// is younger than a lease period (a dead instance's clients reconnect elsewhere and join again).
/// </summary>
public sealed class SharedParticipants(PostgresDatabase db, ExperimentLeases leases, TimeProvider clock) : IParticipants
{
    private readonly Participants _local = new();

    public void Join(string connectionId, string clientId, string experimentId)
    {
        _local.Join(connectionId, clientId, experimentId);
        using var c = db.Open();
        db.Execute(c, null, """
            INSERT INTO presence (connection_id, instance_id, client_id, experiment_id) VALUES (@id, @me, @c, @e)
            ON CONFLICT (connection_id) DO UPDATE SET client_id = EXCLUDED.client_id, experiment_id = EXCLUDED.experiment_id
            """, ("id", connectionId), ("me", leases.InstanceId), ("c", clientId), ("e", experimentId));
    }

    public (string ClientId, string ExperimentId)? Leave(string connectionId)
    {
        var left = _local.Leave(connectionId);
        if (left is not null)
        {
            using var c = db.Open();
            db.Execute(c, null, "DELETE FROM presence WHERE connection_id = @id", ("id", connectionId));
        }
        return left;
    }

    public IReadOnlyList<string> Connected(string experimentId)
    {
        using var c = db.Open();
        var clients = db.Query(c, null, """
            SELECT DISTINCT p.client_id FROM presence p JOIN coordinators i ON i.instance_id = p.instance_id
            WHERE p.experiment_id = @e AND i.seen_utc > @alive
            """, r => r.GetString(0), ("e", experimentId), ("alive", db.Time(clock.GetUtcNow() - leases.Period)));
        clients.Sort(StringComparer.Ordinal); // the database's collation is not ordinal; sampling needs one order everywhere
        return clients;
    }

    public bool IsConnected(string clientId, string experimentId)
    {
        using var c = db.Open();
        return db.Count(c, null, """
            SELECT COUNT(*) FROM presence p JOIN coordinators i ON i.instance_id = p.instance_id
            WHERE p.experiment_id = @e AND p.client_id = @c AND i.seen_utc > @alive
            """, ("e", experimentId), ("c", clientId), ("alive", db.Time(clock.GetUtcNow() - leases.Period))) > 0;
    }
}
