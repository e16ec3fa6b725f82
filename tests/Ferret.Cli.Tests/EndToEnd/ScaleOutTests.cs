using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text.Json;
using Ferret.Core.Algorithms;
using Ferret.Core.Packets;
using Ferret.Core.Parameters;
using Ferret.Core.Protocol;
using Ferret.Tests;
using Microsoft.AspNetCore.SignalR.Client;
using Xunit.Abstractions;

namespace Ferret.Cli.Tests.EndToEnd;

/// <summary>
/// Several coordinator processes behind one round log (PostgreSQL) and one SignalR backplane (Redis), with
/// clients spread across them: experiments finish with one fingerprint everywhere, an owner killed mid-round
/// is replaced and loses nothing, and a packet sent to an instance that does not own the experiment counts
/// once. Skipped, with the reason, where neither server can be had.
/// </summary>
[Collection(SharedMachine.Name)]
public sealed class ScaleOutTests(ITestOutputHelper output)
{
    [SkippableTheory]
    [InlineData(2)]
    [InlineData(3)]
    public async Task Instances_with_edge_clients_spread_across_them_finish_an_experiment_with_agreeing_fingerprints(int instances)
    {
        using var federation = new Federation(shards: instances, instances: instances);
        await Task.WhenAll(Enumerable.Range(0, instances).Select(i => federation.StartCoordinatorAsync($"coordinator-{i}", i)));
        var id = await federation.CreateExperimentAsync(rounds: 2, minClients: instances, deadlineSeconds: 120);

        // An observer on the last instance hears every round, whichever instance runs them.
        await using var observer = federation.Hub(Federation.AdminKey, instance: instances - 1);
        var completed = new ConcurrentQueue<RoundEvent>();
        observer.On<RoundEvent>(RoundsProtocol.RoundEvent, e =>
        {
            if (e.Kind == RoundEvent.Completed)
                completed.Enqueue(e);
        });
        await observer.StartAsync();
        await observer.InvokeAsync(RoundsProtocol.Subscribe, id);

        var edges = new List<Cli.Demo.ChildProcess>();
        for (int i = 0; i < instances; i++)
            edges.Add(await federation.StartEdgeAsync(i + 1, id, instance: i));
        foreach (var edge in edges)
            await Federation.ExitsCleanlyAsync(edge, 300);

        for (int i = 0; i < instances; i++)
        {
            var experiment = await federation.ExperimentAsync(id, instance: i);
            Assert.Equal("Completed", experiment.GetProperty("state").GetString());
            Assert.All(Federation.Rounds(experiment), r =>
            {
                Assert.Equal("Completed", r.GetProperty("state").GetString());
                Assert.True(r.GetProperty("aggregated").GetInt32() == instances, $"round {r.GetProperty("round")} should aggregate one packet per client: {r}");
            });
        }
        var fingerprints = edges.Select(Federation.FinalFingerprint).Distinct().ToList();
        Assert.Equal(await federation.ReplayAsync(id, instance: instances - 1), Assert.Single(fingerprints));
        Assert.Equal([1, 2], completed.Select(e => e.Round));
    }

    [SkippableFact]
    public async Task A_secure_round_with_clients_on_both_instances_unmasks_through_the_shared_store()
    {
        // Three clients on two instances: whichever owns the experiment, some stage messages arrive at the other one,
        // are stored in PostgreSQL, and the owner's requests reach their clients through Redis.
        using var federation = new Federation(shards: 3, instances: 2);
        await Task.WhenAll(Enumerable.Range(0, 2).Select(i => federation.StartCoordinatorAsync($"coordinator-{i}", i)));
        var id = await federation.CreateExperimentAsync(rounds: 1, minClients: 3, deadlineSeconds: 120,
            secureAggregation: new { threshold = 2 }, differentialPrivacy: new { noiseMultiplier = 1.0, clipNorm = 0.05, noise = "distributed" });
        var edges = new List<Cli.Demo.ChildProcess>();
        for (int i = 0; i < 3; i++)
            edges.Add(await federation.StartEdgeAsync(i + 1, id, instance: i % 2));
        foreach (var edge in edges)
            await Federation.ExitsCleanlyAsync(edge, 300);

        for (int i = 0; i < 2; i++)
        {
            var experiment = await federation.ExperimentAsync(id, instance: i);
            Assert.Equal("Completed", experiment.GetProperty("state").GetString());
            var round = Assert.Single(Federation.Rounds(experiment));
            Assert.True(round.GetProperty("state").GetString() == "Completed" && round.GetProperty("aggregated").GetInt32() == 3,
                $"the secure round should sum all three masked inputs: {round}");
            Assert.True(round.GetProperty("metrics").GetProperty("privacy").GetProperty("secureAggregation").GetBoolean(), $"the round is recorded as secure: {round}");
        }
        var fingerprints = edges.Select(Federation.FinalFingerprint).Distinct().ToList();
        Assert.Equal(await federation.ReplayAsync(id, instance: 1), Assert.Single(fingerprints));
    }

    [SkippableFact]
    public async Task The_owner_killed_mid_round_is_replaced_and_no_completed_round_is_lost_or_redone()
    {
        const int lease = 3;
        using var federation = new Federation(shards: 2, instances: 2, leaseSeconds: lease);
        var owner = await federation.StartCoordinatorAsync("coordinator-0", 0);
        var id = await federation.CreateExperimentAsync(rounds: 3, minClients: 2, deadlineSeconds: 120);
        await federation.WaitForAsync(id, e => OwnerIs(e, "coordinator-0"), 60);
        await federation.StartCoordinatorAsync("coordinator-1", 1);

        // Both clients talk to the instance that survives; the owner dies the moment round 2 is assigned (open, packets on their way).
        var killed = new TaskCompletionSource<long>(TaskCreationOptions.RunContinuationsAsynchronously);
        var edge1 = await federation.StartEdgeAsync(1, id, line =>
        {
            if (line.Contains("round 2: training", StringComparison.Ordinal) && !killed.Task.IsCompleted)
            {
                owner.Kill();
                killed.TrySetResult(Stopwatch.GetTimestamp());
            }
        }, instance: 1);
        var edge2 = await federation.StartEdgeAsync(2, id, instance: 1);
        long killedAt = await killed.Task.WaitAsync(TimeSpan.FromSeconds(240));
        await federation.WaitForAsync(id, e => OwnerIs(e, "coordinator-1"), 120, instance: 1);
        var takeover = Stopwatch.GetElapsedTime(killedAt);
        output.WriteLine($"coordinator-1 took the experiment over {takeover.TotalSeconds:F2} s after its owner was killed (lease {lease} s)");

        foreach (var edge in new[] { edge1, edge2 })
            await Federation.ExitsCleanlyAsync(edge, 300);
        var experiment = await federation.ExperimentAsync(id, instance: 1);
        Assert.Equal("Completed", experiment.GetProperty("state").GetString());
        var rounds = Federation.Rounds(experiment).ToList();
        Assert.Equal([1, 2, 3], rounds.Select(r => r.GetProperty("round").GetInt32()));
        Assert.All(rounds, r =>
        {
            Assert.Equal("Completed", r.GetProperty("state").GetString());
            Assert.True(r.GetProperty("aggregated").GetInt32() == 2, $"round {r.GetProperty("round")} should keep both packets: {r}");
        });
        // Each round was applied once by each client, and the model everyone holds is the log's.
        foreach (var edge in new[] { edge1, edge2 })
        {
            foreach (int round in new[] { 1, 2, 3 })
                Assert.Single(File.ReadLines(edge.LogPath), l => l.Contains($"round {round} applied", StringComparison.Ordinal));
        }
        Assert.Equal(await federation.ReplayAsync(id, instance: 1), Assert.Single(new[] { edge1, edge2 }.Select(Federation.FinalFingerprint).Distinct()));
    }

    [SkippableFact]
    public async Task A_packet_sent_to_an_instance_that_does_not_own_the_experiment_is_aggregated_once()
    {
        using var federation = new Federation(shards: 1, instances: 2);
        await federation.StartCoordinatorAsync("coordinator-0", 0);
        var id = await federation.CreateExperimentAsync(rounds: 1, minClients: 2, deadlineSeconds: 120);
        await federation.WaitForAsync(id, e => OwnerIs(e, "coordinator-0"), 60);
        await federation.StartCoordinatorAsync("coordinator-1", 1);
        var descriptor = Wire.Deserialize<ExperimentDescriptor>(await federation.Admin.GetByteArrayAsync($"api/experiments/{id}/descriptor"));

        // X talks to the instance that does not own the experiment (and also holds a second connection to the owner); Y talks to the owner.
        string tokenX = await federation.EnrolClientAsync(1), tokenY = await federation.EnrolClientAsync(0);
        await using var x = federation.Hub(tokenX, instance: 1);
        await using var xAtOwner = federation.Hub(tokenX, instance: 0);
        await using var y = federation.Hub(tokenY, instance: 0);
        var assigned = new TaskCompletionSource<RoundAssignment>(TaskCreationOptions.RunContinuationsAsynchronously);
        var done = new TaskCompletionSource<RoundEvent>(TaskCreationOptions.RunContinuationsAsynchronously);
        x.On<RoundAssignment>(RoundsProtocol.Assignment, a => assigned.TrySetResult(a));
        x.On<RoundEvent>(RoundsProtocol.RoundEvent, e =>
        {
            if (e.Kind == RoundEvent.Completed)
                done.TrySetResult(e);
        });
        foreach (var h in new[] { x, y, xAtOwner })
            await h.StartAsync();
        await x.InvokeAsync<JoinResult>(RoundsProtocol.Join, id, null);
        await y.InvokeAsync<JoinResult>(RoundsProtocol.Join, id, null);
        // The owner's assignment reaches X on the other instance through Redis.
        var assignment = await assigned.Task.WaitAsync(TimeSpan.FromSeconds(60));

        byte[] packetX = TestPackets.Ferret(descriptor, assignment.Round, seed: 11), packetY = TestPackets.Ferret(descriptor, assignment.Round, seed: 22);
        async Task<string?> Submit(HubConnection h, byte[] p) => (await h.InvokeAsync<SubmitResult>(RoundsProtocol.SubmitUpdate, id, assignment.Round, p)).Reason;
        Assert.Null(await Submit(x, packetX));
        Assert.Contains("replay", await Submit(xAtOwner, packetX));
        Assert.Contains("replay", await Submit(x, packetX));
        Assert.Null(await Submit(y, packetY));
        var completed = await done.Task.WaitAsync(TimeSpan.FromSeconds(60));
        Assert.Equal(2, completed.Aggregated);

        // The update is exactly the aggregate of X's packet and Y's, each once (in client-id order, as the engine aggregates).
        var clientX = await ClientIdAsync(federation, tokenX);
        var clientY = await ClientIdAsync(federation, tokenY);
        var ordered = new[] { (clientX, packetX), (clientY, packetY) }.OrderBy(p => p.Item1, StringComparer.Ordinal).Select(p => Wire.Deserialize<ClientUpdate>(p.Item2)).ToList();
        var algorithm = FederatedAlgorithms.Create(descriptor, ParameterBlocks.FromLengths(descriptor.BlockLengths));
        var expected = Wire.Serialize(algorithm.Aggregate(assignment.Round, ordered, []));
        Assert.Equal(expected, completed.GlobalUpdate);
        var detail = await federation.Admins[1].GetFromJsonAsync<JsonElement>($"api/experiments/{id}/rounds/{assignment.Round}");
        var received = detail.GetProperty("assignments").EnumerateArray().Single(a => a.GetProperty("clientId").GetString() == clientX);
        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(packetX)), received.GetProperty("packetSha256").GetString());
        Assert.Equal(2, (await federation.ExperimentAsync(id, instance: 1)).GetProperty("rejections").GetInt64());
    }

    private static bool OwnerIs(JsonElement experiment, string instance) =>
        experiment.TryGetProperty("owner", out var owner) && owner.ValueKind == JsonValueKind.Object && owner.GetProperty("instanceId").GetString() == instance;

    private static async Task<string> ClientIdAsync(Federation federation, string token)
    {
        using var http = new HttpClient { BaseAddress = federation.Url };
        http.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", token);
        return (await http.GetFromJsonAsync<JsonElement>("api/clients/me")).GetProperty("id").GetString()!;
    }
}
