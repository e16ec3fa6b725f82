using System.Net.Http.Json;
using Ferret.Coordinator.Clients;
using Ferret.Coordinator.Experiments;
using Ferret.Coordinator.Persistence;
using Ferret.Core.Algorithms;
using Ferret.Core.Packets;
using Ferret.Core.Parameters;
using Ferret.Core.Privacy;
using Ferret.Core.Protocol;
using Ferret.Onnx.Export;
using Ferret.Tests;
using Microsoft.AspNetCore.SignalR.Client;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;

namespace Ferret.Coordinator.Tests.Rounds;

/// <summary>Private rounds through the hub: the four secure stages with their deadlines, dropouts, door checks, and DP accounting.</summary>
public sealed class PrivateRoundTests : IDisposable
{
    private readonly FakeTimeProvider _clock = new(DateTimeOffset.UtcNow);
    private readonly CoordinatorFactory _factory;
    private readonly List<HubConnection> _connections = [];
    private readonly List<SecureAggregationClient> _sessions = [];

    public PrivateRoundTests()
    {
        _factory = new CoordinatorFactory(clock: _clock);
        ModelExporter.Export(new ModelSource.FromPreset("tiny-gpt2", 1), Path.Combine(_factory.ArtifactsDirectory, "tiny-gpt2"), overwrite: false);
    }

    public void Dispose()
    {
        foreach (var c in _connections)
            c.DisposeAsync().AsTask().GetAwaiter().GetResult();
        foreach (var s in _sessions)
            s.Dispose();
        _factory.Dispose();
    }

    private IRoundLog Log => _factory.Services.GetRequiredService<IRoundLog>();

    private async Task<ExperimentDescriptor> CreateAsync(object? secureAggregation, object? differentialPrivacy, int clients, int rounds = 1)
    {
        var response = await _factory.Admin().PostAsJsonAsync("/api/experiments", new
        {
            name = "private",
            algorithm = "ferret",
            artifact = "tiny-gpt2",
            rounds,
            fraction = 1.0,
            experimentSeed = 5UL,
            candidateSeeds = 32,
            minClients = clients,
            roundDeadlineSeconds = 600,
            secureAggregation,
            differentialPrivacy,
        });
        Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync());
        var view = (await response.Content.ReadFromJsonAsync<ExperimentView>())!;
        return Wire.Deserialize<ExperimentDescriptor>(await _factory.Admin().GetByteArrayAsync($"/api/experiments/{view.Id}/descriptor"));
    }

    private sealed record Client(EnrolResponse Enrolled, HubConnection Hub, HubRecorder Seen)
    {
        public string Id => Enrolled.ClientId;
    }

    private async Task<List<Client>> JoinAsync(string experimentId, int count)
    {
        var clients = new List<Client>();
        for (int i = 0; i < count; i++)
        {
            var enrolled = await _factory.EnrolAsync($"edge-{i}");
            var hub = _factory.ConnectHub(enrolled.Token);
            _connections.Add(hub);
            var seen = new HubRecorder(hub);
            await hub.StartAsync();
            await hub.InvokeAsync<JoinResult>(RoundsProtocol.Join, experimentId, null);
            clients.Add(new Client(enrolled, hub, seen));
        }
        return clients;
    }

    /// <summary>A Ferret packet of this client, as it would train it.</summary>
    private static FerretUpdate Packet(ExperimentDescriptor d, int round, int client) =>
        (FerretUpdate)Wire.Deserialize<ClientUpdate>(TestPackets.Ferret(d, round * 100 + client));

    private static PrivacyPlan Plan(ExperimentDescriptor d, RoundAssignment a) =>
        PrivacyPlan.Create(d.Privacy!, d.BlockLengths.Length * d.Settings.CandidateSeeds, a.Round, a.Privacy!.Assigned, a.Privacy.Eligible, a.Privacy.ClipNorm);

    /// <summary>Stage 0 for every client: fresh keys advertised; returns each client's session and plan.</summary>
    private async Task<Dictionary<string, (SecureAggregationClient Session, PrivacyPlan Plan)>> AdvertiseAsync(ExperimentDescriptor d, IEnumerable<Client> clients, int round = 1)
    {
        var sessions = new Dictionary<string, (SecureAggregationClient, PrivacyPlan)>();
        foreach (var c in clients)
        {
            var a = await c.Seen.WaitFor<RoundAssignment>(x => x.Round == round);
            Assert.True(a.Privacy?.Secure, "a secure round's assignment says so");
            var plan = Plan(d, a);
            var session = new SecureAggregationClient(d.Id, round, c.Id, plan.VectorLength, new SeededSecrets((ulong)c.Id.GetHashCode(StringComparison.Ordinal)));
            _sessions.Add(session);
            var result = await c.Hub.InvokeAsync<SubmitResult>(RoundsProtocol.AdvertiseKeys, d.Id, round, Wire.Serialize(session.Advertise()));
            Assert.True(result.Accepted, result.Reason);
            sessions[c.Id] = (session, plan);
        }
        return sessions;
    }

    private static async Task ShareAsync(ExperimentDescriptor d, IEnumerable<Client> clients, Dictionary<string, (SecureAggregationClient Session, PrivacyPlan Plan)> s, int round = 1)
    {
        foreach (var c in clients)
        {
            var request = await c.Seen.WaitFor<ShareKeysRequest>(r => r.Round == round);
            var result = await c.Hub.InvokeAsync<SubmitResult>(RoundsProtocol.ShareKeys, d.Id, round, Wire.Serialize(s[c.Id].Session.ShareKeys(request)));
            Assert.True(result.Accepted, result.Reason);
        }
    }

    private static async Task MaskAsync(ExperimentDescriptor d, IEnumerable<Client> clients, Dictionary<string, (SecureAggregationClient Session, PrivacyPlan Plan)> s,
        Dictionary<string, FerretUpdate> packets, int round = 1)
    {
        foreach (var c in clients)
        {
            var request = await c.Seen.WaitFor<MaskedInputRequest>(r => r.Round == round);
            var input = PrivateEncoding.ForMasking(packets[c.Id], s[c.Id].Plan, d.Settings.CandidateSeeds, new SeededSecrets(1));
            var result = await c.Hub.InvokeAsync<SubmitResult>(RoundsProtocol.SubmitMaskedInput, d.Id, round, Wire.Serialize(s[c.Id].Session.Mask(request, input)));
            Assert.True(result.Accepted, result.Reason);
        }
    }

    private static async Task UnmaskAsync(ExperimentDescriptor d, IEnumerable<Client> clients, Dictionary<string, (SecureAggregationClient Session, PrivacyPlan Plan)> s, int round = 1)
    {
        foreach (var c in clients)
        {
            var request = await c.Seen.WaitFor<UnmaskRequest>(r => r.Round == round);
            var result = await c.Hub.InvokeAsync<SubmitResult>(RoundsProtocol.Unmask, d.Id, round, Wire.Serialize(s[c.Id].Session.Unmask(request)));
            Assert.True(result.Accepted, result.Reason);
        }
    }

    /// <summary>Ferret's plain aggregate of the same packets: what the secure round must reproduce.</summary>
    private static SeedCoefficientsUpdate PlainAggregate(ExperimentDescriptor d, IEnumerable<FerretUpdate> packets)
    {
        var plain = Wire.Deserialize<ExperimentDescriptor>(Wire.Serialize(d));
        plain.Privacy = null;
        var ferret = new FerretAlgorithm(plain, ParameterBlocks.FromLengths(d.BlockLengths));
        return (SeedCoefficientsUpdate)ferret.Aggregate(1, packets.ToList(), []);
    }

    private static void AssertClose(SeedCoefficientsUpdate expected, SeedCoefficientsUpdate actual, double tolerance)
    {
        Assert.Equal(expected.SeedIndices, actual.SeedIndices);
        Assert.Equal(expected.Blocks, actual.Blocks);
        for (int i = 0; i < expected.Coefficients.Length; i++)
        {
            double e = expected.Coefficients[i], a = actual.Coefficients[i];
            Assert.True(Math.Abs(e - a) <= tolerance + (1e-6 * Math.Abs(e)), $"coefficient {i}: secure {a}, plain {e}");
        }
    }

    [Fact]
    public async Task A_secure_round_runs_its_four_stages_and_releases_only_the_sum()
    {
        var d = await CreateAsync(new { threshold = 3 }, null, clients: 4);
        var clients = await JoinAsync(d.Id, 4);
        var packets = clients.Select((c, i) => (c.Id, Packet(d, 1, i))).ToDictionary(p => p.Id, p => p.Item2);

        // A packet in the clear is refused: the coordinator must never hold one.
        await clients[0].Seen.WaitFor<RoundAssignment>(x => x.Round == 1);
        var plain = await clients[0].Hub.InvokeAsync<SubmitResult>(RoundsProtocol.SubmitUpdate, d.Id, 1, Wire.Serialize<ClientUpdate>(packets[clients[0].Id]));
        Assert.False(plain.Accepted, "a plain packet in a secure experiment must be refused");
        Assert.Contains("uses secure aggregation", plain.Reason);

        var s = await AdvertiseAsync(d, clients);
        await ShareAsync(d, clients, s);
        await MaskAsync(d, clients, s, packets);
        await UnmaskAsync(d, clients, s);
        var done = await clients[0].Seen.WaitFor<RoundEvent>(e => e.Round == 1 && e.Kind == RoundEvent.Completed);
        Assert.Equal(4, done.Aggregated);
        Assert.Null(done.Epsilon);
        var stages = clients[0].Seen.All<RoundEvent>().Where(e => e.Kind == RoundEvent.Stage).Select(e => e.Detail!.Split(':')[0]).ToList();
        Assert.Equal(["share-keys", "masked-input", "unmasking"], stages);

        var update = Assert.IsType<SeedCoefficientsUpdate>(Wire.Deserialize<GlobalUpdate>(done.GlobalUpdate!));
        var plan = s.Values.First().Plan;
        AssertClose(PlainAggregate(d, packets.Values), update, d.Settings.ServerLearningRate * plan.SumErrorBound / 4 * 2);
        Assert.Equal(2.5, done.MeanTrainLoss!.Value, 5); // the loss slot of the sum

        // What the log holds of each client: its masked input, never its gamma.
        foreach (var a in Log.GetAssignments(d.Id, 1))
        {
            Assert.Equal(AssignmentState.Received, a.State);
            Assert.Null(a.TrainLoss);
        }
        foreach (var (client, bytes) in Log.GetPackets(d.Id, 1))
            Assert.Equal(plan.VectorLength, Wire.Deserialize<MaskedInput>(bytes).Vector.Length);
        var view = (await _factory.Admin().GetFromJsonAsync<ExperimentView>($"/api/experiments/{d.Id}"))!;
        Assert.Equal(3, view.Privacy!.Threshold);
        Assert.True(view.RoundLog![0].Metrics!.Privacy!.SecureAggregation, "round 1 is recorded as a secure round");
    }

    [Fact]
    public async Task Clients_that_drop_after_masking_are_still_summed_once_the_unmask_deadline_passes()
    {
        var d = await CreateAsync(new { threshold = 3, unmaskSeconds = 30 }, null, clients: 4);
        var clients = await JoinAsync(d.Id, 4);
        var packets = clients.Select((c, i) => (c.Id, Packet(d, 1, i))).ToDictionary(p => p.Id, p => p.Item2);
        var s = await AdvertiseAsync(d, clients);
        await ShareAsync(d, clients, s);
        await MaskAsync(d, clients, s, packets);
        // n - t = 1 client sends its masked input and vanishes before unmasking.
        var gone = clients[^1];
        await gone.Hub.StopAsync();
        await UnmaskAsync(d, clients.Take(3), s);
        await Task.Delay(300);
        Assert.DoesNotContain(clients[0].Seen.All<RoundEvent>(), e => e.Kind == RoundEvent.Completed);
        _clock.Advance(TimeSpan.FromSeconds(31));
        var done = await clients[0].Seen.WaitFor<RoundEvent>(e => e.Round == 1 && e.Kind == RoundEvent.Completed);
        Assert.Equal(4, done.Aggregated);
        AssertClose(PlainAggregate(d, packets.Values), Assert.IsType<SeedCoefficientsUpdate>(Wire.Deserialize<GlobalUpdate>(done.GlobalUpdate!)),
            d.Settings.ServerLearningRate * s.Values.First().Plan.SumErrorBound);
    }

    [Fact]
    public async Task A_client_that_drops_after_sharing_has_its_masks_removed_and_its_input_left_out()
    {
        var d = await CreateAsync(new { threshold = 3 }, null, clients: 4);
        var clients = await JoinAsync(d.Id, 4);
        var packets = clients.Select((c, i) => (c.Id, Packet(d, 1, i))).ToDictionary(p => p.Id, p => p.Item2);
        var s = await AdvertiseAsync(d, clients);
        await ShareAsync(d, clients, s);
        var silent = clients[1];
        await MaskAsync(d, clients.Where(c => c != silent), s, packets);
        _clock.Advance(TimeSpan.FromSeconds(601)); // the round's training deadline
        await UnmaskAsync(d, clients.Where(c => c != silent), s);
        var done = await clients[0].Seen.WaitFor<RoundEvent>(e => e.Round == 1 && e.Kind == RoundEvent.Completed);
        Assert.Equal(3, done.Aggregated);
        Assert.Equal(1, done.Missing);
        AssertClose(PlainAggregate(d, packets.Where(p => p.Key != silent.Id).Select(p => p.Value)),
            Assert.IsType<SeedCoefficientsUpdate>(Wire.Deserialize<GlobalUpdate>(done.GlobalUpdate!)), d.Settings.ServerLearningRate * s.Values.First().Plan.SumErrorBound);
        Assert.Equal("no masked input before the deadline", Log.GetAssignments(d.Id, 1).Single(a => a.ClientId == silent.Id).Reason);
    }

    [Fact]
    public async Task Forged_and_replayed_stage_messages_are_refused_at_the_door_and_an_identical_retry_is_not()
    {
        var d = await CreateAsync(new { threshold = 3 }, null, clients: 3);
        var clients = await JoinAsync(d.Id, 3);
        var packets = clients.Select((c, i) => (c.Id, Packet(d, 1, i))).ToDictionary(p => p.Id, p => p.Item2);
        var s = await AdvertiseAsync(d, clients);
        var a = clients[0];
        var again = await a.Hub.InvokeAsync<SubmitResult>(RoundsProtocol.AdvertiseKeys, d.Id, 1, Wire.Serialize(s[a.Id].Session.Advertise()));
        Assert.True(again.Accepted, "an identical retry (after a reconnect) is accepted: " + again.Reason);
        using var other = new SecureAggregationClient(d.Id, 1, a.Id, 8);
        var different = await a.Hub.InvokeAsync<SubmitResult>(RoundsProtocol.AdvertiseKeys, d.Id, 1, Wire.Serialize(other.Advertise()));
        Assert.Equal("a different advertise-keys message from this client was already received (replay)", different.Reason);
        var early = await a.Hub.InvokeAsync<SubmitResult>(RoundsProtocol.Unmask, d.Id, 1, Wire.Serialize(new UnmaskResponse()));
        Assert.Contains("is at stage", early.Reason);

        await ShareAsync(d, clients, s);
        await MaskAsync(d, clients, s, packets);
        var request = await a.Seen.WaitFor<UnmaskRequest>(r => r.Round == 1);
        var genuine = s[a.Id].Session.Unmask(request);
        var forged = Wire.Deserialize<UnmaskResponse>(Wire.Serialize(genuine));
        forged.Shares[0].Share[3] ^= 0x10;
        var refused = await a.Hub.InvokeAsync<SubmitResult>(RoundsProtocol.Unmask, d.Id, 1, Wire.Serialize(forged));
        Assert.False(refused.Accepted, "a forged unmasking share must be refused");
        Assert.Contains("does not match the commitment", refused.Reason);
        var junk = await a.Hub.InvokeAsync<SubmitResult>(RoundsProtocol.Unmask, d.Id, 1, new byte[] { 0xC1, 0x00 });
        Assert.StartsWith("malformed unmasking message", junk.Reason);
        Assert.True(Log.CountRejections(d.Id) >= 4, "each refusal is counted");
        await UnmaskAsync(d, clients, s);
        var done = await a.Seen.WaitFor<RoundEvent>(e => e.Round == 1 && e.Kind == RoundEvent.Completed);
        Assert.Equal(3, done.Aggregated);
    }

    [Fact]
    public async Task Too_few_clients_advertising_keys_abandon_the_round_with_a_reason()
    {
        var d = await CreateAsync(new { threshold = 3, keysSeconds = 20 }, null, clients: 4);
        var clients = await JoinAsync(d.Id, 4);
        await AdvertiseAsync(d, clients.Take(2));
        await clients[0].Seen.WaitFor<RoundAssignment>(x => x.Round == 1);
        _clock.Advance(TimeSpan.FromSeconds(21));
        var abandoned = await clients[0].Seen.WaitFor<RoundEvent>(e => e.Round == 1 && e.Kind == RoundEvent.Abandoned);
        Assert.Equal("only 2 of 4 clients advertised keys; the threshold is 3", abandoned.Detail);
        var late = await clients[3].Hub.InvokeAsync<SubmitResult>(RoundsProtocol.AdvertiseKeys, d.Id, 1, Wire.Serialize(new SecureAggregationClient(d.Id, 1, clients[3].Id, 8).Advertise()));
        Assert.False(late.Accepted, "a round that is over takes no keys");
    }

    [Fact]
    public async Task Central_dp_reports_epsilon_after_every_round_in_the_event_the_log_and_the_status_view()
    {
        var d = await CreateAsync(null, new { noiseMultiplier = 1.5, clipNorm = 0.5, delta = 1e-6 }, clients: 2, rounds: 2);
        var clients = await JoinAsync(d.Id, 2);
        var epsilons = new List<double>();
        for (int round = 1; round <= 2; round++)
        {
            foreach (var c in clients)
            {
                var a = await c.Seen.WaitFor<RoundAssignment>(x => x.Round == round);
                Assert.False(a.Privacy!.Secure, "a central-DP round without secure aggregation is not secure");
                Assert.Equal(0.5, a.Privacy.ClipNorm);
                var result = await c.Hub.InvokeAsync<SubmitResult>(RoundsProtocol.SubmitUpdate, d.Id, round, TestPackets.Ferret(d, round));
                Assert.True(result.Accepted, result.Reason);
            }
            var done = await clients[0].Seen.WaitFor<RoundEvent>(e => e.Round == round && e.Kind == RoundEvent.Completed);
            Assert.Null(done.MeanTrainLoss); // an unnoised loss would leak; under DP it is not told
            var dense = Assert.IsType<SeedCoefficientsUpdate>(Wire.Deserialize<GlobalUpdate>(done.GlobalUpdate!));
            Assert.Equal(d.BlockLengths.Length * d.Settings.CandidateSeeds, dense.Coefficients.Length);
            epsilons.Add(done.Epsilon!.Value);
        }
        // q = 2 of 2 clients, z = 1.5, delta = 1e-6: the accountant's numbers, round by round.
        Assert.Equal(RdpAccountant.Epsilon(1.0, 1.5, 1, 1e-6).Epsilon, epsilons[0], 9);
        Assert.Equal(RdpAccountant.Epsilon(1.0, 1.5, 2, 1e-6).Epsilon, epsilons[1], 9);
        var view = (await _factory.Admin().GetFromJsonAsync<ExperimentView>($"/api/experiments/{d.Id}"))!;
        Assert.Equal(epsilons[1], view.Privacy!.EpsilonSpent!.Value, 9);
        Assert.Equal(2, view.Privacy.AccountedRounds);
        Assert.Equal(epsilons[0], view.RoundLog![0].Metrics!.Privacy!.Epsilon!.Value, 9);
        Assert.Equal(1.0, view.RoundLog[0].Metrics!.Privacy!.SamplingRate);
    }

    [Fact]
    public async Task Privacy_settings_that_cannot_work_are_refused_naming_the_field()
    {
        async Task<string> Refusal(object body)
        {
            var response = await _factory.Admin().PostAsJsonAsync("/api/experiments", body);
            Assert.Equal(System.Net.HttpStatusCode.BadRequest, response.StatusCode);
            return await response.Content.ReadAsStringAsync();
        }
        var body = new { name = "x", algorithm = "ferret", artifact = "tiny-gpt2", rounds = 1, fraction = 1.0, secureAggregation = new { threshold = 1 } };
        Assert.Contains("'threshold' = 1", await Refusal(body));
        Assert.Contains("differentialPrivacy.noise", await Refusal(new
        {
            name = "x",
            algorithm = "ferret",
            artifact = "tiny-gpt2",
            rounds = 1,
            fraction = 1.0,
            differentialPrivacy = new { noiseMultiplier = 1, clipNorm = 1, noise = "everywhere" }
        }));
        Assert.Contains("Distributed noise needs secure aggregation", await Refusal(new
        {
            name = "x",
            algorithm = "ferret",
            artifact = "tiny-gpt2",
            rounds = 1,
            fraction = 1.0,
            differentialPrivacy = new { noiseMultiplier = 1, clipNorm = 1, noise = "distributed" }
        }));
        Assert.Contains("'fedavg' is not supported", await Refusal(new
        {
            name = "x",
            algorithm = "fedavg",
            artifact = "tiny-gpt2",
            rounds = 1,
            fraction = 1.0,
            secureAggregation = new { threshold = 2 }
        }));
    }
}
