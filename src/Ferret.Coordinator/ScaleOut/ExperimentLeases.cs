using System.Collections.Concurrent;
using System.Data.Common;
using Ferret.Coordinator.Persistence;
using Ferret.Coordinator.Persistence.Sql;
using Npgsql;

namespace Ferret.Coordinator.ScaleOut;

/// <summary>
/// Experiment ownership among coordinator instances that share a PostgreSQL round log: a lease row per
/// experiment with an expiry. Every instance looks four times per lease period: the owner renews (the row
/// then expires three quarters of a period later), the others take over an expired row. So an owner that
/// dies is replaced within one period, and one that cannot renew stops acting on its own first (at three
/// fifths of a period after its last renewal, before the row expires).
/// The same loop keeps this instance's heartbeat, which marks whose connections count. Nudges travel by
/// PostgreSQL's LISTEN/NOTIFY, delivered only after the packet that caused them is committed.
/// </summary>
public sealed partial class ExperimentLeases : BackgroundService, IExperimentOwnership
{
    private const string Channel = "ferret_rounds";
    private readonly PostgresDatabase _db;
    private readonly IRoundLog _log;
    private readonly TimeProvider _clock;
    private readonly ILogger<ExperimentLeases> _logger;
    private readonly ConcurrentDictionary<string, DateTimeOffset> _held = new(StringComparer.Ordinal);

    public ExperimentLeases(PostgresDatabase db, IRoundLog log, TimeProvider clock, string instanceId, TimeSpan period, ILogger<ExperimentLeases> logger)
    {
        ArgumentException.ThrowIfNullOrEmpty(instanceId);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(period, TimeSpan.Zero);
        _db = db;
        _log = log;
        _clock = clock;
        _logger = logger;
        InstanceId = instanceId;
        Period = period;
    }

    public string InstanceId { get; }

    /// <summary>The lease period: an owner that dies is replaced within it.</summary>
    public TimeSpan Period { get; }

    /// <summary>How long after its last renewal a lease row expires.</summary>
    private TimeSpan RowLife => Period * 0.75;

    public event Action<string, bool>? Woken;

    public bool Owns(string experimentId) => _held.TryGetValue(experimentId, out var until) && _clock.GetUtcNow() < until;

    public void Nudge(string experimentId)
    {
        if (Owns(experimentId))
        {
            Woken?.Invoke(experimentId, false);
            return;
        }
        try
        {
            using var c = _db.Open();
            _db.Execute(c, null, "SELECT pg_notify(@ch, @e)", ("ch", Channel), ("e", experimentId));
        }
        catch (Exception e) when (e is DbException or TimeoutException or InvalidOperationException)
        {
            // What caused the nudge is in the log already; the owner finds it on its next tick.
            LeaseLog.NudgeFailed(_logger, e, experimentId);
        }
    }

    public ExperimentOwner? OwnerOf(string experimentId)
    {
        using var c = _db.Open();
        return _db.Query(c, null, "SELECT owner, acquired_utc, expires_utc FROM experiment_leases WHERE experiment_id = @e AND expires_utc > @now",
            r => new ExperimentOwner(r.GetString(0), _db.ReadTime(r, 1), _db.ReadTime(r, 2)), ("e", experimentId), ("now", _db.Time(_clock.GetUtcNow())))
            .SingleOrDefault();
    }

    /// <summary>
    /// One pass: this instance's heartbeat, dead instances forgotten, and a lease renewed or taken on every
    /// unfinished experiment (finished ones let go). Returns the experiments this instance has just become owner of.
    /// </summary>
    public IReadOnlyList<string> Refresh()
    {
        var now = _clock.GetUtcNow();
        using (var c = _db.Open())
        {
            _db.Execute(c, null, """
                INSERT INTO coordinators (instance_id, started_utc, seen_utc) VALUES (@me, @now, @now)
                ON CONFLICT (instance_id) DO UPDATE SET seen_utc = EXCLUDED.seen_utc
                """, ("me", InstanceId), ("now", _db.Time(now)));
            var dead = _db.Time(now - (3 * Period));
            _db.Execute(c, null, "DELETE FROM presence WHERE instance_id IN (SELECT instance_id FROM coordinators WHERE seen_utc < @dead)", ("dead", dead));
            _db.Execute(c, null, "DELETE FROM coordinators WHERE seen_utc < @dead", ("dead", dead));
        }
        var gained = new List<string>();
        foreach (var experiment in _log.ListExperiments())
        {
            if (experiment.State == ExperimentState.Completed)
            {
                if (_held.TryRemove(experiment.Id, out _))
                    Release(experiment.Id);
                continue;
            }
            if (TryHold(experiment.Id, now))
                gained.Add(experiment.Id);
        }
        foreach (var id in gained)
            Woken?.Invoke(id, true);
        return gained;
    }

    /// <summary>Renews or takes the experiment's lease at <paramref name="now"/>; true when this instance has just become its owner.</summary>
    internal bool TryHold(string experimentId, DateTimeOffset now)
    {
        bool wasHeld = Owns(experimentId);
        string? previous = null;
        bool ours;
        using (var c = _db.Open())
        using (var tx = c.BeginTransaction())
        {
            var row = _db.Query(c, tx, "SELECT owner, expires_utc FROM experiment_leases WHERE experiment_id = @e FOR UPDATE",
                r => (Owner: r.GetString(0), Expires: _db.ReadTime(r, 1)), ("e", experimentId)).SingleOrDefault();
            var expires = _db.Time(now + RowLife);
            if (row.Owner is null)
            {
                ours = _db.Execute(c, tx, """
                    INSERT INTO experiment_leases (experiment_id, owner, acquired_utc, expires_utc) VALUES (@e, @me, @now, @x)
                    ON CONFLICT DO NOTHING
                    """, ("e", experimentId), ("me", InstanceId), ("now", _db.Time(now)), ("x", expires)) == 1;
            }
            else if (row.Owner == InstanceId || row.Expires <= now)
            {
                previous = row.Owner == InstanceId ? null : row.Owner;
                _db.Execute(c, tx, """
                    UPDATE experiment_leases SET owner = @me, expires_utc = @x,
                        acquired_utc = CASE WHEN owner = @me THEN acquired_utc ELSE @now END
                    WHERE experiment_id = @e
                    """, ("e", experimentId), ("me", InstanceId), ("now", _db.Time(now)), ("x", expires));
                ours = true;
            }
            else
            {
                ours = false;
            }
            tx.Commit();
        }
        if (!ours)
        {
            if (_held.TryRemove(experimentId, out _))
                LeaseLog.Lost(_logger, InstanceId, experimentId);
            return false;
        }
        // Counted valid for four fifths of the row's life, so an owner that cannot renew stops before anyone may take over.
        _held[experimentId] = now + (RowLife * 0.8);
        if (wasHeld && previous is null)
            return false;
        if (previous is not null)
            LeaseLog.TookOver(_logger, InstanceId, experimentId, previous);
        else
            LeaseLog.Acquired(_logger, InstanceId, experimentId);
        return true;
    }

    /// <summary>Lets go of one experiment's lease, so another instance may take it at once.</summary>
    public void Release(string experimentId)
    {
        _held.TryRemove(experimentId, out _);
        using var c = _db.Open();
        _db.Execute(c, null, "DELETE FROM experiment_leases WHERE experiment_id = @e AND owner = @me", ("e", experimentId), ("me", InstanceId));
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        await Task.WhenAll(RenewAsync(stoppingToken), ListenAsync(stoppingToken)).ConfigureAwait(false);
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await base.StopAsync(cancellationToken).ConfigureAwait(false);
        // A clean stop hands every experiment on at once instead of after a lease period.
        _held.Clear();
        try
        {
            using var c = _db.Open();
            _db.Execute(c, null, "DELETE FROM experiment_leases WHERE owner = @me", ("me", InstanceId));
            _db.Execute(c, null, "DELETE FROM presence WHERE instance_id = @me", ("me", InstanceId));
            _db.Execute(c, null, "DELETE FROM coordinators WHERE instance_id = @me", ("me", InstanceId));
        }
        catch (Exception e) when (e is DbException or TimeoutException or InvalidOperationException)
        {
            LeaseLog.RefreshFailed(_logger, e, InstanceId);
        }
    }

    private async Task RenewAsync(CancellationToken stoppingToken)
    {
        using (var c = _db.Open())
            _db.Execute(c, null, "DELETE FROM presence WHERE instance_id = @me", ("me", InstanceId)); // left by an earlier life under the same name
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                Refresh();
            }
            catch (Exception e) when (e is DbException or TimeoutException or InvalidOperationException)
            {
                // Leases lapse on their own; the next pass tries again.
                LeaseLog.RefreshFailed(_logger, e, InstanceId);
            }
            try
            {
                await Task.Delay(Period / 4, _clock, stoppingToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    private async Task ListenAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await using var c = await _db.DataSource.OpenConnectionAsync(stoppingToken).ConfigureAwait(false);
                c.Notification += (_, e) =>
                {
                    if (Owns(e.Payload))
                        Woken?.Invoke(e.Payload, false);
                };
                await using (var listen = new NpgsqlCommand($"LISTEN {Channel}", c))
                    await listen.ExecuteNonQueryAsync(stoppingToken).ConfigureAwait(false);
                while (true)
                    await c.WaitAsync(stoppingToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            catch (Exception e) when (e is DbException or IOException or TimeoutException)
            {
                // Without nudges the engine still looks at every tick; reconnect after a pause.
                LeaseLog.ListenFailed(_logger, e, InstanceId);
                try
                {
                    await Task.Delay(TimeSpan.FromSeconds(1), _clock, stoppingToken).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }
        }
    }

    private static partial class LeaseLog
    {
        [LoggerMessage(EventId = 30, Level = LogLevel.Information, Message = "{Instance} owns {Experiment}")]
        public static partial void Acquired(ILogger logger, string instance, string experiment);

        [LoggerMessage(EventId = 31, Level = LogLevel.Warning, Message = "{Instance} took over {Experiment} from {Previous}, whose lease expired")]
        public static partial void TookOver(ILogger logger, string instance, string experiment, string previous);

        [LoggerMessage(EventId = 32, Level = LogLevel.Warning, Message = "{Instance} lost its lease on {Experiment}")]
        public static partial void Lost(ILogger logger, string instance, string experiment);

        [LoggerMessage(EventId = 33, Level = LogLevel.Error, Message = "{Instance} could not renew its leases; retrying")]
        public static partial void RefreshFailed(ILogger logger, Exception exception, string instance);

        [LoggerMessage(EventId = 35, Level = LogLevel.Warning, Message = "Could not nudge the owner of {Experiment}; it looks at its next tick")]
        public static partial void NudgeFailed(ILogger logger, Exception exception, string experiment);

        [LoggerMessage(EventId = 34, Level = LogLevel.Warning, Message = "{Instance} lost its notification connection; reconnecting")]
        public static partial void ListenFailed(ILogger logger, Exception exception, string instance);
    }
}
