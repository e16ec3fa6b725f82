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
using Microsoft.AspNetCore.SignalR.Client;
using Microsoft.Extensions.DependencyInjection;

namespace Ferret.Coordinator.Tests.Rounds;

/// <summary>The round engine in-process: sampling, assignments, deadlines, aggregation, broadcast, streaming.</summary>
public sealed class RoundEngineTests : IDisposable
{
    private readonly CoordinatorFactory _factory = new();
    private readonly List<HubConnection> _connections = [];

    public RoundEngineTests() =>
        ModelExporter.Export(new ModelSource.FromPreset("tiny-gpt2", 1), Path.Combine(_factory.ArtifactsDirectory, "tiny-gpt2"), overwrite: false);

    public void Dispose()
    {
        foreach (var c in _connections)
            c.DisposeAsync().AsTask().GetAwaiter().GetResult();
        _factory.Dispose();
    }

    private IRoundLog Log => _factory.Services.GetRequiredService<IRoundLog>();

    private async Task<ExperimentDescriptor> CreateAsync(string algorithm = "ferret", int rounds = 2, int minClients = 2, int deadline = 60, double fraction = 1.0)
    {
        var response = await _factory.Admin().PostAsJsonAsync("/api/experiments", new
        {
            name = "engine",
            algorithm,
            artifact = "tiny-gpt2",
            rounds,
            fraction,
            experimentSeed = 11UL,
            candidateSeeds = 64,
            minClients,
            roundDeadlineSeconds = deadline,
        });
        response.EnsureSuccessStatusCode();
        var view = (await response.Content.ReadFromJsonAsync<ExperimentView>())!;
        return Wire.Deserialize<ExperimentDescriptor>(await _factory.Admin().GetByteArrayAsync($"/api/experiments/{view.Id}/descriptor"));
    }

    /// <summary>An enrolled client connected to the hub and joined to the experiment.</summary>
    private async Task<(EnrolResponse Client, HubConnection Hub, HubRecorder Seen, JoinResult Joined)> JoinAsync(string name, string experimentId)
    {
        var client = await _factory.EnrolAsync(name);
        var hub = _factory.ConnectHub(client.Token);
        _connections.Add(hub);
        var seen = new HubRecorder(hub);
        await hub.StartAsync();
        var joined = await hub.InvokeAsync<JoinResult>(RoundsProtocol.Join, experimentId, """{"device":"cpu"}""");
        return (client, hub, seen, joined);
    }

    [Fact]
    public void Sampling_takes_the_fraction_reproducibly_and_at_least_one_client()
    {
        var eligible = Enumerable.Range(0, 20).Select(i => $"client-{i:D2}").ToList();
        var d = new ExperimentDescriptor { Fraction = 0.25, ExperimentSeed = 5 };
        var first = RoundEngine.Sample(eligible, d, 1);
        Assert.Equal(5, first.Count);
        Assert.Equal(first, RoundEngine.Sample(eligible, d, 1));
        Assert.Equal(5, first.Distinct().Count());
        Assert.All(first, c => Assert.Contains(c, eligible));
        // Over many rounds every client gets picked: the draw moves with the round.
        var picked = Enumerable.Range(1, 40).SelectMany(r => RoundEngine.Sample(eligible, d, r)).ToHashSet();
        Assert.Equal(20, picked.Count);
        Assert.Single(RoundEngine.Sample(eligible, new ExperimentDescriptor { Fraction = 0.001 }, 1));
    }

    [Fact]
    public async Task A_round_opens_for_enough_joined_clients_completes_when_all_answered_and_broadcasts_its_update()
    {
        var d = await CreateAsync(minClients: 2, rounds: 2);
        var a = await JoinAsync("edge-a", d.Id);
        Assert.Equal(0, a.Joined.LastCompletedRound);
        Assert.Null(a.Joined.OpenAssignment);
        Assert.Equal(d.Id, Wire.Deserialize<ExperimentDescriptor>(a.Joined.Descriptor).Id);
        await Task.Delay(300);
        Assert.Empty(a.Seen.All<RoundAssignment>()); // one client is below MinClients = 2

        var b = await JoinAsync("edge-b", d.Id);
        var assignment = await a.Seen.WaitFor<RoundAssignment>(x => x.Round == 1);
        await b.Seen.WaitFor<RoundAssignment>(x => x.Round == 1);
        Assert.Equal(0, assignment.BaseRound);
        Assert.True(assignment.DeadlineUtc > DateTimeOffset.UtcNow.AddSeconds(30));

        foreach (var c in new[] { a, b })
        {
            var result = await c.Hub.InvokeAsync<SubmitResult>(RoundsProtocol.SubmitUpdate, d.Id, 1, TestPackets.Ferret(d, 1));
            Assert.True(result.Accepted, result.Reason);
        }
        var completed = await a.Seen.WaitFor<RoundEvent>(e => e.Round == 1 && e.Kind == RoundEvent.Completed);
        Assert.Equal(2, completed.Aggregated);
        Assert.Equal(0, completed.Missing);
        Assert.False(completed.ExperimentEnded);
        var update = Assert.IsType<SeedCoefficientsUpdate>(Wire.Deserialize<GlobalUpdate>(completed.GlobalUpdate!));
        Assert.Equal(1, update.Round);
        Assert.NotEmpty(update.Coefficients);
        // What was broadcast is what the log holds, and what catch-up serves.
        Assert.Equal(completed.GlobalUpdate, Log.GetGlobalUpdates(d.Id, 0).Single().GlobalUpdate);
        var served = Wire.Deserialize<GlobalUpdate[]>(await _factory.Admin().GetByteArrayAsync($"/api/experiments/{d.Id}/updates?after=0"));
        Assert.Equal(1, Assert.Single(served).Round);

        var second = await b.Seen.WaitFor<RoundAssignment>(x => x.Round == 2);
        Assert.Equal(1, second.BaseRound);

        // Operators see it too: Prometheus metrics and a health check that reaches the round log.
        var metrics = await _factory.CreateClient().GetStringAsync("/metrics");
        Assert.Matches(@"ferret_rounds_completed_total(\{[^}]*\})? [1-9]", metrics);
        Assert.Matches(@"ferret_packets_accepted_total(\{[^}]*\})? [1-9]", metrics);
        Assert.Equal("Healthy", await _factory.CreateClient().GetStringAsync("/health"));
    }

    [Fact]
    public async Task A_silent_client_does_not_hold_the_round_past_its_deadline()
    {
        var d = await CreateAsync(minClients: 2, rounds: 1, deadline: 3);
        var a = await JoinAsync("edge-a", d.Id);
        var b = await JoinAsync("edge-b", d.Id);
        await a.Seen.WaitFor<RoundAssignment>(x => x.Round == 1);
        Assert.True((await a.Hub.InvokeAsync<SubmitResult>(RoundsProtocol.SubmitUpdate, d.Id, 1, TestPackets.Ferret(d, 1))).Accepted);
        var completed = await b.Seen.WaitFor<RoundEvent>(e => e.Round == 1 && e.Kind == RoundEvent.Completed);
        Assert.Equal(1, completed.Aggregated);
        Assert.Equal(1, completed.Missing);
        Assert.True(completed.ExperimentEnded);
        Assert.Equal(AssignmentState.Missed, Log.GetAssignments(d.Id, 1).Single(x => x.ClientId == b.Client.ClientId).State);
        Assert.Equal(ExperimentState.Completed, Log.GetExperiment(d.Id)!.State);
        var late = await b.Hub.InvokeAsync<SubmitResult>(RoundsProtocol.SubmitUpdate, d.Id, 1, TestPackets.Ferret(d, 1));
        Assert.Contains("late", late.Reason);

        // The round in full, for an operator: who sent what, who stayed silent.
        var detail = (await _factory.Admin().GetFromJsonAsync<RoundDetailView>($"/api/experiments/{d.Id}/rounds/1"))!;
        Assert.Equal("Completed", detail.Round.State);
        Assert.Equal(1, detail.Round.Metrics!.Aggregated);
        var sent = detail.Assignments.Single(x => x.ClientId == a.Client.ClientId);
        Assert.Equal(("Received", 64), (sent.State, sent.PacketSha256!.Length));
        Assert.True(sent.PacketBytes > 0);
        Assert.Equal("Missed", detail.Assignments.Single(x => x.ClientId == b.Client.ClientId).State);
        Assert.Equal(System.Net.HttpStatusCode.Forbidden, (await _factory.WithToken(a.Client.Token).GetAsync($"/api/experiments/{d.Id}/rounds/1")).StatusCode);
    }

    [Fact]
    public async Task A_round_nobody_answers_is_abandoned_and_the_next_builds_on_the_same_model()
    {
        var d = await CreateAsync(minClients: 1, rounds: 2, deadline: 3);
        var a = await JoinAsync("edge-a", d.Id);
        await a.Seen.WaitFor<RoundEvent>(e => e.Round == 1 && e.Kind == RoundEvent.Abandoned);
        var second = await a.Seen.WaitFor<RoundAssignment>(x => x.Round == 2);
        Assert.Equal(0, second.BaseRound);
        var answer = await a.Hub.InvokeAsync<SubmitResult>(RoundsProtocol.SubmitUpdate, d.Id, 2, TestPackets.Ferret(d, 2));
        Assert.True(answer.Accepted, answer.Reason);
        var done = await a.Seen.WaitFor<RoundEvent>(e => e.Round == 2 && e.Kind == RoundEvent.Completed);
        Assert.Equal(0, done.BaseRound);
        Assert.True(done.ExperimentEnded);
        Assert.Equal(2, Assert.Single(Log.GetGlobalUpdates(d.Id, 0)).Round);
    }

    [Fact]
    public async Task A_client_that_reconnects_gets_its_waiting_assignment_back_and_a_failure_report_frees_the_round()
    {
        var d = await CreateAsync(minClients: 1, rounds: 1);
        var a = await JoinAsync("edge-a", d.Id);
        await a.Seen.WaitFor<RoundAssignment>(x => x.Round == 1);
        await a.Hub.StopAsync();

        var again = _factory.ConnectHub(a.Client.Token);
        _connections.Add(again);
        var seen = new HubRecorder(again);
        await again.StartAsync();
        var joined = await again.InvokeAsync<JoinResult>(RoundsProtocol.Join, d.Id, null);
        Assert.Equal(1, joined.OpenAssignment?.Round);

        await again.InvokeAsync(RoundsProtocol.ReportFailure, d.Id, 1, "out of memory");
        var abandoned = await seen.WaitFor<RoundEvent>(e => e.Round == 1 && e.Kind == RoundEvent.Abandoned);
        Assert.True(abandoned.ExperimentEnded);
        var assignment = Log.GetAssignments(d.Id, 1).Single();
        Assert.Equal(AssignmentState.Failed, assignment.State);
        Assert.Equal("out of memory", assignment.Reason);
    }

    [Fact]
    public async Task Full_deltas_stream_in_chunks_and_oversized_streams_are_refused()
    {
        var d = await CreateAsync(algorithm: "fedavg", minClients: 2, rounds: 1);
        var a = await JoinAsync("edge-a", d.Id);
        var b = await JoinAsync("edge-b", d.Id);
        await a.Seen.WaitFor<RoundAssignment>(x => x.Round == 1);
        var packet = TestPackets.FullDelta(d, 1);
        Assert.True(packet.Length > CoordinatorFactory.MaxMessageBytes);

        var whole = await a.Hub.InvokeAsync<SubmitResult>(RoundsProtocol.SubmitUpdate, d.Id, 1, packet[..(int)(CoordinatorFactory.MaxMessageBytes + 1)]);
        Assert.Contains("stream it in chunks", whole.Reason);
        var streamed = await a.Hub.InvokeAsync<SubmitResult>(RoundsProtocol.SubmitUpdateStream, d.Id, 1, TestPackets.Chunks(packet, 128 * 1024));
        Assert.True(streamed.Accepted, streamed.Reason);
        var huge = new byte[CoordinatorFactory.MaxPacketBytes + 1];
        var refused = await b.Hub.InvokeAsync<SubmitResult>(RoundsProtocol.SubmitUpdateStream, d.Id, 1, TestPackets.Chunks(huge, 128 * 1024));
        Assert.Contains("exceeds the limit", refused.Reason);
        Assert.True((await b.Hub.InvokeAsync<SubmitResult>(RoundsProtocol.SubmitUpdateStream, d.Id, 1,
            TestPackets.Chunks(TestPackets.FullDelta(d, 1, 3e-4f), 128 * 1024))).Accepted);

        var completed = await a.Seen.WaitFor<RoundEvent>(e => e.Round == 1 && e.Kind == RoundEvent.Completed);
        Assert.Null(completed.GlobalUpdate); // megabytes: fetched over HTTP, not pushed
        var update = Assert.IsType<FullDeltaGlobalUpdate>(Assert.Single(
            Wire.Deserialize<GlobalUpdate[]>(await _factory.Admin().GetByteArrayAsync($"/api/experiments/{d.Id}/updates?after=0"))));
        Assert.Equal(d.ParameterCount, update.Delta.Length);
        Assert.Equal(Log.GetPackets(d.Id, 1).Count, update.Contributors);
    }

    [Fact]
    public async Task Stopping_an_experiment_abandons_its_open_round()
    {
        var d = await CreateAsync(minClients: 1, rounds: 3);
        var a = await JoinAsync("edge-a", d.Id);
        await a.Seen.WaitFor<RoundAssignment>(x => x.Round == 1);
        (await _factory.Admin().PostAsync($"/api/experiments/{d.Id}/stop", null)).EnsureSuccessStatusCode();
        var abandoned = await a.Seen.WaitFor<RoundEvent>(e => e.Round == 1 && e.Kind == RoundEvent.Abandoned);
        Assert.True(abandoned.ExperimentEnded);
        Assert.Equal("experiment stopped", abandoned.Detail);
        await Task.Delay(300);
        Assert.DoesNotContain(a.Seen.All<RoundAssignment>(), x => x.Round == 2);
    }
}
