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
using Microsoft.Extensions.Time.Testing;

namespace Ferret.Coordinator.Tests.Rounds;

/// <summary>
/// The round engine in-process: sampling, assignments, deadlines, aggregation, broadcast, streaming. Time is a
/// fake clock: a deadline passes when a test advances it, never because the machine was slow.
/// </summary>
public sealed class RoundEngineTests : IDisposable
{
    private readonly FakeTimeProvider _clock = new(DateTimeOffset.UtcNow);
    private readonly CoordinatorFactory _factory;
    private readonly List<HubConnection> _connections = [];

    public RoundEngineTests()
    {
        _factory = new CoordinatorFactory(clock: _clock);
        ModelExporter.Export(new ModelSource.FromPreset("tiny-gpt2", 1), Path.Combine(_factory.ArtifactsDirectory, "tiny-gpt2"), overwrite: false);
    }

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
        Assert.True(response.IsSuccessStatusCode, $"creating the experiment: {response.StatusCode} {await response.Content.ReadAsStringAsync()}");
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
        Assert.True(first.Count == 5, $"25 % of 20 is 5, drew {first.Count}");
        Assert.True(first.SequenceEqual(RoundEngine.Sample(eligible, d, 1)), "the same seed and round draw the same clients");
        Assert.True(first.Distinct().Count() == 5, "drawn without replacement");
        Assert.True(first.All(eligible.Contains), "only eligible clients are drawn");
        // Over many rounds every client gets picked: the draw moves with the round.
        var picked = Enumerable.Range(1, 40).SelectMany(r => RoundEngine.Sample(eligible, d, r)).ToHashSet();
        Assert.True(picked.Count == 20, $"every client is drawn in 40 rounds, {picked.Count} were");
        Assert.True(RoundEngine.Sample(eligible, new ExperimentDescriptor { Fraction = 0.001 }, 1).Count == 1, "a tiny fraction still draws one client");
    }

    [Fact]
    public async Task A_round_opens_for_enough_joined_clients_completes_when_all_answered_and_broadcasts_its_update()
    {
        var d = await CreateAsync(minClients: 2, rounds: 2);
        var a = await JoinAsync("edge-a", d.Id);
        Assert.True(a.Joined.LastCompletedRound == 0 && a.Joined.OpenAssignment is null, "a new experiment has no round yet");
        Assert.True(Wire.Deserialize<ExperimentDescriptor>(a.Joined.Descriptor).Id == d.Id, "the join hands back the experiment's descriptor");
        Assert.True(Log.GetProgress(d.Id).LastRound == 0, "one client is below MinClients = 2: no round opens");

        var b = await JoinAsync("edge-b", d.Id);
        var assignment = await a.Seen.WaitFor<RoundAssignment>(x => x.Round == 1);
        await b.Seen.WaitFor<RoundAssignment>(x => x.Round == 1);
        Assert.True(assignment.BaseRound == 0, $"round 1 builds on round 0, not {assignment.BaseRound}");
        Assert.True(assignment.DeadlineUtc == _clock.GetUtcNow().AddSeconds(60), $"the deadline is 60 s after opening on the coordinator's clock: {assignment.DeadlineUtc:O}");

        foreach (var c in new[] { a, b })
        {
            var result = await c.Hub.InvokeAsync<SubmitResult>(RoundsProtocol.SubmitUpdate, d.Id, 1, TestPackets.Ferret(d, 1));
            Assert.True(result.Accepted, $"{c.Client.ClientId}'s packet: {result.Reason}");
        }
        // Every assignment answered: the round closes without its deadline passing (the clock has not moved).
        var completed = await a.Seen.WaitFor<RoundEvent>(e => e.Round == 1 && e.Kind == RoundEvent.Completed);
        Assert.True((completed.Aggregated, completed.Missing, completed.ExperimentEnded) == (2, 0, false),
            $"aggregated {completed.Aggregated}, missing {completed.Missing}, ended {completed.ExperimentEnded}; expected 2, 0, false");
        var update = Wire.Deserialize<GlobalUpdate>(completed.GlobalUpdate!) as SeedCoefficientsUpdate;
        Assert.True(update is { Round: 1, Coefficients.Length: > 0 }, "a Ferret round broadcasts its seed coefficients inline");
        // What was broadcast is what the log holds, and what catch-up serves.
        Assert.True(completed.GlobalUpdate!.SequenceEqual(Log.GetGlobalUpdates(d.Id, 0).Single().GlobalUpdate), "the broadcast update is the logged one");
        var served = Wire.Deserialize<GlobalUpdate[]>(await _factory.Admin().GetByteArrayAsync($"/api/experiments/{d.Id}/updates?after=0"));
        Assert.True(served.Length == 1 && served[0].Round == 1, $"catch-up serves round 1 only: {string.Join(", ", served.Select(u => u.Round))}");

        var second = await b.Seen.WaitFor<RoundAssignment>(x => x.Round == 2);
        Assert.True(second.BaseRound == 1, $"round 2 builds on round 1, not {second.BaseRound}");

        // Operators see it too: Prometheus metrics and a health check that reaches the round log.
        var metrics = await _factory.CreateClient().GetStringAsync("/metrics");
        Assert.True(System.Text.RegularExpressions.Regex.IsMatch(metrics, @"ferret_rounds_completed_total(\{[^}]*\})? [1-9]"), "the completed-rounds counter moved");
        Assert.True(System.Text.RegularExpressions.Regex.IsMatch(metrics, @"ferret_packets_accepted_total(\{[^}]*\})? [1-9]"), "the accepted-packets counter moved");
        var health = await _factory.CreateClient().GetStringAsync("/health");
        Assert.True(health == "Healthy", $"health: {health}");
    }

    [Fact]
    public async Task A_silent_client_does_not_hold_the_round_past_its_deadline()
    {
        var d = await CreateAsync(minClients: 2, rounds: 1, deadline: 3);
        var a = await JoinAsync("edge-a", d.Id);
        var b = await JoinAsync("edge-b", d.Id);
        await a.Seen.WaitFor<RoundAssignment>(x => x.Round == 1);
        var accepted = await a.Hub.InvokeAsync<SubmitResult>(RoundsProtocol.SubmitUpdate, d.Id, 1, TestPackets.Ferret(d, 1));
        Assert.True(accepted.Accepted, $"edge-a's packet before the deadline: {accepted.Reason}");
        // However long that took on this machine, the coordinator's clock has not moved: the round waits for edge-b.
        Assert.True(Log.GetRound(d.Id, 1)!.State == RoundState.Open, "with edge-b silent and the deadline not reached, the round stays open");
        _clock.Advance(TimeSpan.FromSeconds(3));
        var completed = await b.Seen.WaitFor<RoundEvent>(e => e.Round == 1 && e.Kind == RoundEvent.Completed);
        Assert.True((completed.Aggregated, completed.Missing, completed.ExperimentEnded) == (1, 1, true),
            $"at the deadline: aggregated {completed.Aggregated}, missing {completed.Missing}, ended {completed.ExperimentEnded}; expected 1, 1, true");
        var silent = Log.GetAssignments(d.Id, 1).Single(x => x.ClientId == b.Client.ClientId).State;
        Assert.True(silent == AssignmentState.Missed, $"edge-b's assignment is {silent}, expected Missed");
        Assert.True(Log.GetExperiment(d.Id)!.State == ExperimentState.Completed, "its only round closed: the experiment is completed");
        var late = await b.Hub.InvokeAsync<SubmitResult>(RoundsProtocol.SubmitUpdate, d.Id, 1, TestPackets.Ferret(d, 1));
        Assert.True(!late.Accepted && late.Reason!.Contains("late", StringComparison.Ordinal), $"a packet after the deadline is refused as late: {late.Reason}");

        // The round in full, for an operator: who sent what, who stayed silent.
        var detail = (await _factory.Admin().GetFromJsonAsync<RoundDetailView>($"/api/experiments/{d.Id}/rounds/1"))!;
        Assert.True(detail.Round.State == "Completed" && detail.Round.Metrics!.Aggregated == 1, $"round detail: {detail.Round.State}, {detail.Round.Metrics?.Aggregated} aggregated");
        var sent = detail.Assignments.Single(x => x.ClientId == a.Client.ClientId);
        Assert.True(sent.State == "Received" && sent.PacketSha256!.Length == 64 && sent.PacketBytes > 0, $"edge-a: {sent.State}, digest {sent.PacketSha256}, {sent.PacketBytes} bytes");
        var missed = detail.Assignments.Single(x => x.ClientId == b.Client.ClientId).State;
        Assert.True(missed == "Missed", $"edge-b: {missed}");
        var forbidden = (await _factory.WithToken(a.Client.Token).GetAsync($"/api/experiments/{d.Id}/rounds/1")).StatusCode;
        Assert.True(forbidden == System.Net.HttpStatusCode.Forbidden, $"a client may not read round details: {forbidden}");
    }

    [Fact]
    public async Task A_round_nobody_answers_is_abandoned_and_the_next_builds_on_the_same_model()
    {
        var d = await CreateAsync(minClients: 1, rounds: 2, deadline: 3);
        var a = await JoinAsync("edge-a", d.Id);
        await a.Seen.WaitFor<RoundAssignment>(x => x.Round == 1);
        _clock.Advance(TimeSpan.FromSeconds(3));
        await a.Seen.WaitFor<RoundEvent>(e => e.Round == 1 && e.Kind == RoundEvent.Abandoned);
        var second = await a.Seen.WaitFor<RoundAssignment>(x => x.Round == 2);
        Assert.True(second.BaseRound == 0, $"round 2 builds on round 0 (round 1 was abandoned), not {second.BaseRound}");
        var answer = await a.Hub.InvokeAsync<SubmitResult>(RoundsProtocol.SubmitUpdate, d.Id, 2, TestPackets.Ferret(d, 2));
        Assert.True(answer.Accepted, $"the round-2 packet: {answer.Reason}");
        var done = await a.Seen.WaitFor<RoundEvent>(e => e.Round == 2 && e.Kind == RoundEvent.Completed);
        Assert.True(done.BaseRound == 0 && done.ExperimentEnded, $"round 2 completed on base {done.BaseRound}, ended {done.ExperimentEnded}");
        var logged = Log.GetGlobalUpdates(d.Id, 0);
        Assert.True(logged.Count == 1 && logged[0].Round == 2, $"the log holds round 2's update only: {string.Join(", ", logged.Select(u => u.Round))}");
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
        Assert.True(joined.OpenAssignment?.Round == 1, $"the rejoin hands back the waiting assignment: {joined.OpenAssignment?.Round}");

        await again.InvokeAsync(RoundsProtocol.ReportFailure, d.Id, 1, "out of memory");
        var abandoned = await seen.WaitFor<RoundEvent>(e => e.Round == 1 && e.Kind == RoundEvent.Abandoned);
        Assert.True(abandoned.ExperimentEnded, "the only round failed: the experiment ends");
        var assignment = Log.GetAssignments(d.Id, 1).Single();
        Assert.True(assignment.State == AssignmentState.Failed && assignment.Reason == "out of memory", $"the assignment is {assignment.State} ({assignment.Reason})");
    }

    [Fact]
    public async Task Full_deltas_stream_in_chunks_and_oversized_streams_are_refused()
    {
        var d = await CreateAsync(algorithm: "fedavg", minClients: 2, rounds: 1);
        var a = await JoinAsync("edge-a", d.Id);
        var b = await JoinAsync("edge-b", d.Id);
        await a.Seen.WaitFor<RoundAssignment>(x => x.Round == 1);
        var packet = TestPackets.FullDelta(d, 1);
        Assert.True(packet.Length > CoordinatorFactory.MaxMessageBytes, $"a full delta ({packet.Length} bytes) is above one message");

        var whole = await a.Hub.InvokeAsync<SubmitResult>(RoundsProtocol.SubmitUpdate, d.Id, 1, packet[..(int)(CoordinatorFactory.MaxMessageBytes + 1)]);
        Assert.True(whole.Reason?.Contains("stream it in chunks", StringComparison.Ordinal) == true, $"one oversized message: {whole.Reason}");
        var streamed = await a.Hub.InvokeAsync<SubmitResult>(RoundsProtocol.SubmitUpdateStream, d.Id, 1, TestPackets.Chunks(packet, 128 * 1024));
        Assert.True(streamed.Accepted, $"the streamed delta: {streamed.Reason}");
        var huge = new byte[CoordinatorFactory.MaxPacketBytes + 1];
        var refused = await b.Hub.InvokeAsync<SubmitResult>(RoundsProtocol.SubmitUpdateStream, d.Id, 1, TestPackets.Chunks(huge, 128 * 1024));
        Assert.True(refused.Reason?.Contains("the most this experiment's packets can take", StringComparison.Ordinal) == true, $"a stream past the packet limit: {refused.Reason}");
        var retried = await b.Hub.InvokeAsync<SubmitResult>(RoundsProtocol.SubmitUpdateStream, d.Id, 1, TestPackets.Chunks(TestPackets.FullDelta(d, 1, 3e-4f), 128 * 1024));
        Assert.True(retried.Accepted, $"edge-b's proper stream after the refusal: {retried.Reason}");

        var completed = await a.Seen.WaitFor<RoundEvent>(e => e.Round == 1 && e.Kind == RoundEvent.Completed);
        Assert.True(completed.GlobalUpdate is null, "megabytes are fetched over HTTP, not pushed");
        var served = Wire.Deserialize<GlobalUpdate[]>(await _factory.Admin().GetByteArrayAsync($"/api/experiments/{d.Id}/updates?after=0"));
        var update = served.Single() as FullDeltaGlobalUpdate;
        Assert.True(update is not null && update.Delta.Length == d.ParameterCount, $"a full delta over {d.ParameterCount} parameters");
        Assert.True(update.Contributors == Log.GetPackets(d.Id, 1).Count, $"{update.Contributors} contributors vs {Log.GetPackets(d.Id, 1).Count} packets logged");
    }

    [Fact]
    public async Task Stopping_an_experiment_abandons_its_open_round()
    {
        var d = await CreateAsync(minClients: 1, rounds: 3);
        var a = await JoinAsync("edge-a", d.Id);
        await a.Seen.WaitFor<RoundAssignment>(x => x.Round == 1);
        var stop = await _factory.Admin().PostAsync($"/api/experiments/{d.Id}/stop", null);
        Assert.True(stop.IsSuccessStatusCode, $"stop: {stop.StatusCode}");
        var abandoned = await a.Seen.WaitFor<RoundEvent>(e => e.Round == 1 && e.Kind == RoundEvent.Abandoned);
        Assert.True(abandoned.ExperimentEnded && abandoned.Detail == "experiment stopped", $"abandoned: ended {abandoned.ExperimentEnded}, '{abandoned.Detail}'");
        Assert.True(Log.GetProgress(d.Id).LastRound == 1, "no round opens after the stop");
    }
}
