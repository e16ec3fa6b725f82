using System.Net;
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

namespace Ferret.Coordinator.Tests.Security;

/// <summary>
/// The holes an outside probe found at the door, each closed: values that could not be stored or aggregated,
/// stored packets that stopped the engine, unbounded ids that flooded the log, nil fields, decompression
/// bombs, self-reported weights, trailing bytes and unbuffered-before-checked streams.
/// </summary>
public sealed class DoorTests : IAsyncLifetime, IDisposable
{
    private readonly CoordinatorFactory _factory = new(settings: new Dictionary<string, string> { ["Ferret:MaxSampleCount"] = "1000" });
    private readonly List<HubConnection> _hubs = [];
    private ExperimentDescriptor _d = null!;

    public async Task InitializeAsync()
    {
        ModelExporter.Export(new ModelSource.FromPreset("tiny-gpt2", 1), Path.Combine(_factory.ArtifactsDirectory, "tiny-gpt2"), overwrite: false);
        var created = await _factory.Admin().PostAsJsonAsync("/api/experiments", new
        {
            name = "door",
            algorithm = "ferret",
            artifact = "tiny-gpt2",
            rounds = 2,
            fraction = 1.0,
            experimentSeed = 5UL,
            candidateSeeds = 64,
            minClients = 2,
            roundDeadlineSeconds = 600,
        });
        created.EnsureSuccessStatusCode();
        var view = (await created.Content.ReadFromJsonAsync<ExperimentView>())!;
        _d = Wire.Deserialize<ExperimentDescriptor>(await _factory.Admin().GetByteArrayAsync($"/api/experiments/{view.Id}/descriptor"));
    }

    public async Task DisposeAsync()
    {
        foreach (var h in _hubs)
            await h.DisposeAsync();
    }

    public void Dispose() => _factory.Dispose();

    private IRoundLog Log => _factory.Services.GetRequiredService<IRoundLog>();

    private async Task<(EnrolResponse Client, HubConnection Hub, HubRecorder Seen)> JoinAsync(string name)
    {
        var client = await _factory.EnrolAsync(name);
        var hub = _factory.ConnectHub(client.Token);
        _hubs.Add(hub);
        var seen = new HubRecorder(hub);
        await hub.StartAsync();
        await hub.InvokeAsync<JoinResult>(RoundsProtocol.Join, _d.Id, null);
        return (client, hub, seen);
    }

    private byte[] Packet(int round, Action<FerretUpdate> mutate)
    {
        var update = (FerretUpdate)Wire.Deserialize<ClientUpdate>(TestPackets.Ferret(_d, round));
        mutate(update);
        return Wire.Serialize<ClientUpdate>(update);
    }

    private static Task<SubmitResult> Submit(HubConnection hub, string experimentId, int round, byte[] packet) =>
        hub.InvokeAsync<SubmitResult>(RoundsProtocol.SubmitUpdate, experimentId, round, packet);

    [Fact]
    public async Task Every_reported_value_is_checked_at_the_door_and_nothing_of_a_refused_packet_is_stored()
    {
        var a = await JoinAsync("edge-a");
        var b = await JoinAsync("edge-b");
        await a.Seen.WaitFor<RoundAssignment>(x => x.Round == 1);
        var cases = new (byte[] Packet, string Reason)[]
        {
            (Packet(1, p => p.Stats.Loss = double.PositiveInfinity), "train loss"),
            (Packet(1, p => p.Stats.Loss = double.NaN), "train loss"),
            (Packet(1, p => p.Blocks = null!), "'Blocks' is nil"),
            (Packet(1, p => p.Stats = null!), "no training stats"),
            (Packet(1, p => p.SampleCount = long.MaxValue), "sample count"),
            (Packet(1, p => p.SampleCount = 1001), "cap of 1000"),
            ([.. TestPackets.Ferret(_d, 1), 0xc0], "trailing bytes"),
            (UnknownField(TestPackets.Ferret(_d, 1)), "not canonical"),
        };
        foreach (var (packet, reason) in cases)
        {
            var result = await Submit(a.Hub, _d.Id, 1, packet);
            Assert.False(result.Accepted, $"a packet that should fail with '{reason}' was accepted");
            Assert.Contains(reason, result.Reason);
        }
        Assert.Empty(Log.GetPackets(_d.Id, 1));
        Assert.Equal(AssignmentState.Assigned, Log.GetAssignments(_d.Id, 1).Single(x => x.ClientId == a.Client.ClientId).State);
        // The refused client can still answer with a good packet, and the round completes.
        Assert.True((await Submit(a.Hub, _d.Id, 1, TestPackets.Ferret(_d, 1))).Accepted, "edge-a's valid packet is accepted");
        Assert.True((await Submit(b.Hub, _d.Id, 1, TestPackets.Ferret(_d, 1))).Accepted, "edge-b's valid packet is accepted");
        await a.Seen.WaitFor<RoundEvent>(e => e.Round == 1 && e.Kind == RoundEvent.Completed);
    }

    [Fact]
    public async Task A_stored_packet_that_cannot_be_aggregated_is_rejected_at_close_and_the_round_completes_without_it()
    {
        var a = await JoinAsync("edge-a");
        var b = await JoinAsync("edge-b");
        await a.Seen.WaitFor<RoundAssignment>(x => x.Round == 1);
        // A packet an older, laxer coordinator stored: infinite loss. It must not freeze the round on every tick.
        var poisoned = Packet(1, p => p.Stats.Loss = double.PositiveInfinity);
        Assert.Equal(PacketOutcome.Accepted, Log.RecordPacket(_d.Id, 1, b.Client.ClientId, poisoned, "00", 0, DateTimeOffset.UtcNow));
        Assert.True((await Submit(a.Hub, _d.Id, 1, TestPackets.Ferret(_d, 1))).Accepted, "edge-a's valid packet is accepted");

        var completed = await a.Seen.WaitFor<RoundEvent>(e => e.Round == 1 && e.Kind == RoundEvent.Completed);
        Assert.Equal(1, completed.Aggregated);
        Assert.Equal(2.5, completed.MeanTrainLoss);
        var rejected = Log.GetAssignments(_d.Id, 1).Single(x => x.ClientId == b.Client.ClientId);
        Assert.Equal(AssignmentState.Rejected, rejected.State);
        Assert.Contains("train loss", rejected.Reason);
        // The round detail an operator opens answers (it used to be a 500), and the next round opens.
        var detail = await _factory.Admin().GetAsync($"/api/experiments/{_d.Id}/rounds/1");
        Assert.Equal(HttpStatusCode.OK, detail.StatusCode);
        await b.Seen.WaitFor<RoundAssignment>(x => x.Round == 2);
    }

    [Fact]
    public async Task Caller_supplied_ids_are_bounded_and_rejections_are_rate_limited_per_client()
    {
        var a = await JoinAsync("edge-a");
        string hugeId = new('x', 32 * 1024);
        for (int i = 0; i < 40; i++)
        {
            var result = await Submit(a.Hub, hugeId, 1, TestPackets.Ferret(_d, 1));
            Assert.False(result.Accepted, "the packet is refused");
            Assert.True(result.Reason!.Length < 200, $"the reason must not echo the id: {result.Reason.Length} characters");
        }
        // At most RejectionsPerMinute (30) rows, none holding the id; the log holds no copy of it either.
        Assert.Equal(30, Log.CountRejections());
        Assert.DoesNotContain(_factory.Logs.Lines, l => l.Contains(new string('x', 100), StringComparison.Ordinal));
        Assert.True(_factory.Logs.Lines.Count(l => l.Contains("Rejected packet", StringComparison.Ordinal)) <= 30, "rejection warnings are rate-limited too");
    }

    [Fact]
    public async Task A_stream_from_a_client_that_is_not_assigned_is_refused_without_being_kept()
    {
        var a = await JoinAsync("edge-a");
        var b = await JoinAsync("edge-b");
        await a.Seen.WaitFor<RoundAssignment>(x => x.Round == 1);
        var stranger = await _factory.EnrolAsync("stranger");
        await using var hub = _factory.ConnectHub(stranger.Token);
        await hub.StartAsync();
        var refused = await hub.InvokeAsync<SubmitResult>(RoundsProtocol.SubmitUpdateStream, _d.Id, 1, TestPackets.Chunks(TestPackets.Ferret(_d, 1), 1024));
        Assert.Contains("not assigned", refused.Reason);
        // Streams past the experiment's largest valid packet are refused as well, for assigned clients.
        long max = PacketLimits.MaxPacketBytes(_d);
        var oversized = await a.Hub.InvokeAsync<SubmitResult>(RoundsProtocol.SubmitUpdateStream, _d.Id, 1, TestPackets.Chunks(new byte[max + 1], 16 * 1024));
        Assert.Contains("the most this experiment's packets can take", oversized.Reason);
        Assert.Empty(Log.GetPackets(_d.Id, 1));
        // Both connections still work.
        Assert.True((await a.Hub.InvokeAsync<SubmitResult>(RoundsProtocol.SubmitUpdateStream, _d.Id, 1, TestPackets.Chunks(TestPackets.Ferret(_d, 1), 1024))).Accepted, "a valid packet streamed in 1 KiB chunks is accepted");
        Assert.Contains("not assigned", (await Submit(hub, _d.Id, 1, TestPackets.Ferret(_d, 1))).Reason);
    }

    [Fact]
    public async Task A_run_length_bomb_over_the_hub_is_refused_as_malformed()
    {
        var a = await JoinAsync("edge-a");
        await JoinAsync("edge-b");
        await a.Seen.WaitFor<RoundAssignment>(x => x.Round == 1);
        var honest = (FerretUpdate)Wire.Deserialize<ClientUpdate>(TestPackets.Ferret(_d, 1));
        // The same packet with its block runs claiming 2^26 seeds: a few bytes that would expand to 256 MiB.
        honest.Blocks = [];
        var bytes = Wire.Serialize<ClientUpdate>(honest);
        var bomb = ReplaceEmptyRuns(bytes, 1 << 26);
        var result = await Submit(a.Hub, _d.Id, 1, bomb);
        Assert.Contains("malformed", result.Reason);
        Assert.Contains("out of range", result.Reason);
    }

    /// <summary>The same packet with a ninth, unknown field: it decodes to the same update, but is not what the encoder writes.</summary>
    private static byte[] UnknownField(byte[] packet)
    {
        // [tag, [8 fields]]: the field array is the packet's last element, so a nil appended after it lands inside it.
        Assert.Equal((0x92, 0x00, 0x98), (packet[0], packet[1], packet[2]));
        return [0x92, 0x00, 0x99, .. packet[3..], 0xc0];
    }

    /// <summary>Rewrites the packet's empty run-length array (0x90) into one run (0, count).</summary>
    private static byte[] ReplaceEmptyRuns(byte[] packet, int count)
    {
        // The blocks field is the only empty array in the packet: fixarray of 0 elements.
        int at = Array.IndexOf(packet, (byte)0x90);
        Assert.True(at > 0, "the packet must hold an empty array to rewrite");
        byte[] run = [0x92, 0x00, 0xd2, (byte)(count >> 24), (byte)(count >> 16), (byte)(count >> 8), (byte)count];
        return [.. packet[..at], .. run, .. packet[(at + 1)..]];
    }
}
