using System.Net.Http.Json;
using Ferret.Coordinator.Clients;
using Ferret.Coordinator.Experiments;
using Ferret.Coordinator.Persistence;
using Ferret.Coordinator.Rounds;
using Ferret.Core.Algorithms;
using Ferret.Core.Packets;
using Ferret.Core.Protocol;
using Ferret.Onnx.Export;
using Ferret.Tests;
using Microsoft.AspNetCore.SignalR;
using Microsoft.AspNetCore.SignalR.Client;
using Microsoft.Extensions.DependencyInjection;

namespace Ferret.Coordinator.Tests.Api;

/// <summary>The SignalR hub with the MessagePack protocol: validation at the door and live events.</summary>
public sealed class RoundsHubTests : IAsyncLifetime, IDisposable
{
    // Rounds are opened and closed by hand here, so the engine stays off.
    private readonly CoordinatorFactory _factory = new(runRounds: false);
    private ExperimentView _experiment = null!;
    private ExperimentDescriptor _descriptor = null!;
    private EnrolResponse _a = null!;
    private EnrolResponse _b = null!;

    public async Task InitializeAsync()
    {
        ModelExporter.Export(new ModelSource.FromPreset("tiny-gpt2", 1), Path.Combine(_factory.ArtifactsDirectory, "tiny-gpt2"), overwrite: false);
        var admin = _factory.Admin();
        var created = await admin.PostAsJsonAsync("/api/experiments", new { name = "hub", algorithm = "ferret", artifact = "tiny-gpt2", rounds = 3, fraction = 0.5, experimentSeed = 7UL, candidateSeeds = 64 });
        _experiment = (await created.Content.ReadFromJsonAsync<ExperimentView>())!;
        _descriptor = Wire.Deserialize<ExperimentDescriptor>(await admin.GetByteArrayAsync($"/api/experiments/{_experiment.Id}/descriptor"));
        _a = await _factory.EnrolAsync("edge-a");
        _b = await _factory.EnrolAsync("edge-b");
        _factory.Services.GetRequiredService<IRoundLog>().OpenRound(_experiment.Id, 1, DateTimeOffset.UtcNow, DateTimeOffset.UtcNow.AddMinutes(5), [_a.ClientId]);
    }

    public Task DisposeAsync() => Task.CompletedTask;

    public void Dispose() => _factory.Dispose();

    private HubConnection Connect(string? token) => _factory.ConnectHub(token);

    private byte[] Packet(int round, string? experimentId = null) => TestPackets.Ferret(_descriptor, round, experimentId);

    [Fact]
    public async Task Packets_are_checked_at_the_door_and_observers_see_each_verdict()
    {
        await using var observer = Connect(CoordinatorFactory.AdminKey);
        var events = new List<ClientEvent>();
        var gotFour = new TaskCompletionSource();
        observer.On<ClientEvent>("ClientEvent", e =>
        {
            lock (events)
            {
                events.Add(e);
                if (events.Count == 4)
                    gotFour.TrySetResult();
            }
        });
        await observer.StartAsync();
        await observer.InvokeAsync("Subscribe", _experiment.Id);

        await using var a = Connect(_a.Token);
        await using var b = Connect(_b.Token);
        await a.StartAsync();
        await b.StartAsync();
        var accepted = await a.InvokeAsync<SubmitResult>("SubmitUpdate", _experiment.Id, 1, Packet(1));
        Assert.True(accepted.Accepted, accepted.Reason);
        var replay = await a.InvokeAsync<SubmitResult>("SubmitUpdate", _experiment.Id, 1, Packet(1));
        Assert.Contains("replay", replay.Reason);
        var stranger = await b.InvokeAsync<SubmitResult>("SubmitUpdate", _experiment.Id, 1, Packet(1));
        Assert.Contains("not assigned", stranger.Reason);
        var malformed = await b.InvokeAsync<SubmitResult>("SubmitUpdate", _experiment.Id, 1, new byte[] { 0xc1, 0x01, 0x02 });
        Assert.Contains("malformed", malformed.Reason);
        await gotFour.Task.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(["received", "rejected", "rejected", "rejected"], events.Select(e => e.Kind));

        var log = _factory.Services.GetRequiredService<IRoundLog>();
        Assert.Equal(3, log.CountRejections(_experiment.Id));
        Assert.Single(log.GetPackets(_experiment.Id, 1));
    }

    [Fact]
    public async Task Wrong_round_oversized_and_late_packets_are_rejected_with_a_reason()
    {
        await using var a = Connect(_a.Token);
        await a.StartAsync();
        var wrongRound = await a.InvokeAsync<SubmitResult>("SubmitUpdate", _experiment.Id, 1, Packet(2));
        Assert.Contains("round 1 is open", wrongRound.Reason);
        var oversized = await a.InvokeAsync<SubmitResult>("SubmitUpdate", _experiment.Id, 1, new byte[CoordinatorFactory.MaxMessageBytes + 1]);
        Assert.Contains("exceeds the message limit", oversized.Reason);
        var log = _factory.Services.GetRequiredService<IRoundLog>();
        log.CompleteRound(_experiment.Id, 1, Wire.Serialize<GlobalUpdate>(new SeedCoefficientsUpdate { ExperimentId = _experiment.Id, Round = 1 }), null, null, DateTimeOffset.UtcNow);
        var late = await a.InvokeAsync<SubmitResult>("SubmitUpdate", _experiment.Id, 1, Packet(1));
        Assert.Contains("late", late.Reason);
        // Nothing of the rejected packets reached the round.
        Assert.Empty(log.GetPackets(_experiment.Id, 1));
    }

    [Fact]
    public async Task Unauthenticated_connections_and_observer_submissions_are_refused()
    {
        await using var anonymous = Connect(null);
        await Assert.ThrowsAnyAsync<Exception>(() => anonymous.StartAsync());
        await using var admin = Connect(CoordinatorFactory.AdminKey);
        await admin.StartAsync();
        var e = await Assert.ThrowsAsync<HubException>(() => admin.InvokeAsync<SubmitResult>("SubmitUpdate", _experiment.Id, 1, Packet(1)));
        Assert.Contains("unauthorized", e.Message);
    }

    [Fact]
    public async Task Disagreeing_fingerprints_are_flagged_and_only_the_rounds_participants_report()
    {
        var log = _factory.Services.GetRequiredService<IRoundLog>();
        var c = await _factory.EnrolAsync("edge-c");
        log.OpenRound(_experiment.Id, 2, DateTimeOffset.UtcNow, DateTimeOffset.UtcNow.AddMinutes(5), [_a.ClientId, _b.ClientId]);
        await using var a = Connect(_a.Token);
        await using var b = Connect(_b.Token);
        await using var stranger = Connect(c.Token);
        await using var admin = Connect(CoordinatorFactory.AdminKey);
        foreach (var h in new[] { a, b, stranger, admin })
            await h.StartAsync();
        // Only a round with a global update can be fingerprinted.
        await Assert.ThrowsAsync<HubException>(() => a.InvokeAsync<bool>("ReportFingerprint", _experiment.Id, 2, new string('a', 64)));
        log.AbandonRound(_experiment.Id, 1, "test", DateTimeOffset.UtcNow);
        log.CompleteRound(_experiment.Id, 2, Wire.Serialize<GlobalUpdate>(new SeedCoefficientsUpdate { ExperimentId = _experiment.Id, Round = 2 }), null, null, DateTimeOffset.UtcNow);
        Assert.True(await a.InvokeAsync<bool>("ReportFingerprint", _experiment.Id, 2, new string('a', 64)), "the first report of round 2 agrees with itself");
        // Neither a client that was not assigned to the round nor the admin can make it look disputed.
        var notAssigned = await Assert.ThrowsAsync<HubException>(() => stranger.InvokeAsync<bool>("ReportFingerprint", _experiment.Id, 2, new string('c', 64)));
        Assert.Contains("Only the clients assigned to round 2", notAssigned.Message);
        var byAdmin = await Assert.ThrowsAsync<HubException>(() => admin.InvokeAsync<bool>("ReportFingerprint", _experiment.Id, 2, new string('d', 64)));
        Assert.Contains("unauthorized", byAdmin.Message);
        Assert.Equal([new string('a', 64)], log.GetFingerprints(_experiment.Id, 2).Select(f => f.Fingerprint));
        Assert.False(await b.InvokeAsync<bool>("ReportFingerprint", _experiment.Id, 2, new string('b', 64)), "a participant's different fingerprint is flagged as disagreeing");
    }
}
