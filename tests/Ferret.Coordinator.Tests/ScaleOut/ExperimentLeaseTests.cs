using Ferret.Coordinator.Persistence;
using Ferret.Coordinator.Persistence.Sql;
using Ferret.Coordinator.ScaleOut;
using Ferret.Tests;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;

namespace Ferret.Coordinator.Tests.ScaleOut;

/// <summary>
/// Experiment leases among instances sharing a PostgreSQL round log, on fake time: one owner at a time, a
/// dead owner replaced once its lease expires, a clean stop handing over at once, connections of dead
/// instances no longer counted.
/// </summary>
public sealed class ExperimentLeaseTests : IDisposable
{
    private static readonly TimeSpan Lease = TimeSpan.FromSeconds(10);
    private readonly FakeTimeProvider _clock = new(new DateTimeOffset(2026, 11, 27, 12, 0, 0, TimeSpan.Zero));
    private readonly List<IDisposable> _owned = [];
    private PostgresDatabase? _db;

    public void Dispose()
    {
        foreach (var d in _owned)
            d.Dispose();
        _db?.Dispose();
    }

    private PostgresDatabase Database => _db ??= new PostgresDatabase(TestServices.NewPostgresDatabase());

    private ExperimentLeases Instance(string name)
    {
        var leases = new ExperimentLeases(Database, new SqlRoundLog(Database), _clock, name, Lease, NullLogger<ExperimentLeases>.Instance);
        _owned.Add(leases);
        return leases;
    }

    private void AddExperiment(string id, ExperimentState state = ExperimentState.Running) =>
        new SqlRoundLog(Database).AddExperiment(new ExperimentRecord(id, id, "ferret", [1], state, 3, "fp", _clock.GetUtcNow(), null));

    [SkippableFact]
    public void One_instance_owns_an_experiment_until_its_lease_expires_unrenewed_then_another_takes_it_over()
    {
        AddExperiment("exp-1");
        var a = Instance("a");
        var b = Instance("b");
        Assert.Equal(["exp-1"], a.Refresh());
        Assert.Empty(b.Refresh());
        Assert.True(a.Owns("exp-1"), "the first instance to refresh owns the experiment");
        Assert.False(b.Owns("exp-1"), "a second instance must not own it while the lease runs");
        Assert.Equal("a", b.OwnerOf("exp-1")!.InstanceId);

        // A renews four times a period; B keeps trying and keeps failing.
        for (int i = 0; i < 8; i++)
        {
            _clock.Advance(Lease / 4);
            Assert.Empty(a.Refresh());
            Assert.Empty(b.Refresh());
        }
        Assert.True(a.Owns("exp-1"), "renewed leases keep their owner");

        // A dies right after renewing: it would stop acting at three fifths of a period, and B takes over at
        // three quarters, on its next look; however A's death falls between two renewals, B owns it within a period.
        _clock.Advance(Lease * 0.6);
        Assert.False(a.Owns("exp-1"), "an owner that could not renew stops acting before its lease expires");
        Assert.Empty(b.Refresh());
        _clock.Advance(Lease * 0.15);
        Assert.Equal(["exp-1"], b.Refresh());
        Assert.True(b.Owns("exp-1"), "the survivor owns the experiment once the lease has expired");
        Assert.Equal("b", a.OwnerOf("exp-1")!.InstanceId);

        // A comes back (a long pause, not a death): it finds the lease taken and stays off.
        Assert.Empty(a.Refresh());
        Assert.False(a.Owns("exp-1"), "the old owner must not take the experiment back while the new lease runs");
    }

    [SkippableFact]
    public void Gaining_an_experiment_wakes_the_engine_with_the_gained_flag_and_a_nudge_reaches_the_owner_through_the_database()
    {
        AddExperiment("exp-1");
        var a = Instance("a");
        var b = Instance("b");
        var woken = new List<(string, bool)>();
        var nudged = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        a.Woken += (id, gained) =>
        {
            lock (woken)
                woken.Add((id, gained));
            if (!gained)
                nudged.TrySetResult(id);
        };
        a.Refresh();
        Assert.Equal([("exp-1", true)], woken);
        a.StartAsync(CancellationToken.None).GetAwaiter().GetResult(); // its listener
        b.Refresh();
        // B is not the owner: its nudge goes through PostgreSQL's NOTIFY. The listener may still be starting, so nudge until heard.
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (!nudged.Task.IsCompleted && DateTime.UtcNow < deadline)
        {
            b.Nudge("exp-1");
            nudged.Task.Wait(TimeSpan.FromMilliseconds(200));
        }
        Assert.True(nudged.Task.IsCompleted, "a nudge from a non-owner should reach the owner within 30 s");
        Assert.Equal("exp-1", nudged.Task.Result);
        a.StopAsync(CancellationToken.None).GetAwaiter().GetResult();
    }

    [SkippableFact]
    public void A_clean_stop_hands_every_experiment_on_at_once()
    {
        AddExperiment("exp-1");
        AddExperiment("exp-2", ExperimentState.Created);
        var a = Instance("a");
        var b = Instance("b");
        Assert.Equal(["exp-1", "exp-2"], a.Refresh().Order());
        a.StopAsync(CancellationToken.None).GetAwaiter().GetResult();
        Assert.False(a.Owns("exp-1"), "a stopped instance owns nothing");
        Assert.Equal(["exp-1", "exp-2"], b.Refresh().Order());
    }

    [SkippableFact]
    public void A_completed_experiment_is_let_go()
    {
        AddExperiment("exp-1");
        var a = Instance("a");
        a.Refresh();
        new SqlRoundLog(Database).SetExperimentState("exp-1", ExperimentState.Completed, _clock.GetUtcNow());
        a.Refresh();
        Assert.False(a.Owns("exp-1"), "nobody needs to own a completed experiment");
        Assert.Null(a.OwnerOf("exp-1"));
    }

    [SkippableFact]
    public void Connections_count_on_every_live_instance_and_stop_counting_when_their_instance_dies()
    {
        AddExperiment("exp-1");
        var a = Instance("a");
        var b = Instance("b");
        a.Refresh();
        b.Refresh();
        var onA = new SharedParticipants(Database, a, _clock);
        var onB = new SharedParticipants(Database, b, _clock);
        onA.Join("conn-1", "client-2", "exp-1");
        onB.Join("conn-2", "client-1", "exp-1");
        onB.Join("conn-3", "client-2", "exp-1"); // the same client on a second instance counts once
        onB.Join("conn-4", "client-3", "exp-other");
        Assert.Equal(["client-1", "client-2"], onA.Connected("exp-1"));
        Assert.True(onA.IsConnected("client-1", "exp-1"), "a client on another instance is connected");
        Assert.Equal(("client-1", "exp-1"), onB.Leave("conn-2"));
        Assert.Null(onA.Leave("conn-2"));
        Assert.Equal(["client-2"], onA.Connected("exp-1"));

        // B dies (no more heartbeats): after a lease period its connections no longer count.
        onB.Join("conn-5", "client-4", "exp-1");
        _clock.Advance(Lease / 2);
        a.Refresh();
        Assert.Equal(["client-2", "client-4"], onA.Connected("exp-1"));
        _clock.Advance(Lease / 2);
        a.Refresh();
        Assert.Equal(["client-2"], onA.Connected("exp-1"));
        Assert.True(onA.IsConnected("client-2", "exp-1"), "client-2 is still connected to a live instance");
    }
}
