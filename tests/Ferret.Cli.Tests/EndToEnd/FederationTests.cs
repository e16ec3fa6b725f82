using System.Net.Http.Json;
using System.Text.Json;
using Ferret.Core.Algorithms;
using Ferret.Core.Packets;
using Ferret.Core.Parameters;
using Ferret.Core.Protocol;
using Ferret.Tests;
using Microsoft.AspNetCore.SignalR.Client;
using Microsoft.Extensions.DependencyInjection;

namespace Ferret.Cli.Tests.EndToEnd;

/// <summary>Processes that share the machine's two cores run one test at a time.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class SharedMachine
{
    public const string Name = "processes";
}

/// <summary>
/// The coordinator and edge clients as separate processes talking over real sockets on loopback: rounds
/// complete with identical fingerprints everywhere, a client killed mid-round does not stop its round, a
/// coordinator killed mid-experiment resumes from its database, and bad messages are turned away.
/// </summary>
[Collection(SharedMachine.Name)]
public sealed class FederationTests
{
    [Fact]
    public async Task Three_edge_clients_complete_three_rounds_and_end_with_identical_fingerprints_and_the_model_comes_out_the_same_three_ways()
    {
        using var federation = new Federation(shards: 3);
        await federation.StartCoordinatorAsync();
        var id = await federation.CreateExperimentAsync(rounds: 3, minClients: 3, deadlineSeconds: 120);
        // The third device has no artifact package: it downloads it from the coordinator by fingerprint.
        var downloaded = federation.Scratch("device-3/tiny-gpt2");
        var edges = new List<Cli.Demo.ChildProcess>
        {
            await federation.StartEdgeAsync(1, id, extra: ["--save-model", federation.Scratch("edge-1-model")]),
            await federation.StartEdgeAsync(2, id),
            await federation.StartEdgeAsync(3, id, artifacts: downloaded),
        };
        foreach (var edge in edges)
            await Federation.ExitsCleanlyAsync(edge, 180);
        // The tokens the devices received at enrolment are readable by their owner only.
        if (!OperatingSystem.IsWindows())
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(federation.Scratch("edge-1.token")));
        Assert.Equal(federation.Package.Manifest.ParametersSha256, Onnx.Artifacts.ArtifactPackage.Open(downloaded).Manifest.ParametersSha256);
        Assert.Equal(["device-3/tiny-gpt2"], Directory.GetDirectories(federation.Scratch("device-3")).Select(d => "device-3/" + Path.GetFileName(d)));

        var experiment = await federation.ExperimentAsync(id);
        Assert.Equal("Completed", experiment.GetProperty("state").GetString());
        Assert.All(Federation.Rounds(experiment), r =>
        {
            Assert.Equal("Completed", r.GetProperty("state").GetString());
            Assert.Equal(3, r.GetProperty("aggregated").GetInt32());
        });
        var fingerprints = edges.Select(Federation.FinalFingerprint).Distinct().ToList();
        // Everyone agrees, and with an independent replay of the round log from the initial parameters.
        string replayed = await federation.ReplayAsync(id);
        Assert.Equal(replayed, Assert.Single(fingerprints));

        // The tuned model out: the edge client saved it, `ferret model` rebuilds it from the coordinator and,
        // offline, from the SQLite round log; all three hold the same parameters.
        var fromCoordinator = CliRunner.Run("model", "--coordinator", federation.Url.ToString(), "--token", Federation.AdminKey, "--experiment", id,
            "--out", federation.Scratch("from-coordinator"), "--json");
        Assert.True(fromCoordinator.ExitCode == 0, fromCoordinator.Error);
        var fromLog = CliRunner.Run("model", "--round-log", federation.DatabasePath, "--experiment", id, "--artifacts", federation.Package.Directory,
            "--out", federation.Scratch("from-log"), "--json");
        Assert.True(fromLog.ExitCode == 0, fromLog.Error);
        foreach (var json in new[] { fromCoordinator.Output, fromLog.Output })
        {
            var result = JsonDocument.Parse(json).RootElement;
            Assert.True(result.GetProperty("fingerprint").GetString() == replayed, $"ferret model wrote {json}; the replay is {replayed}");
            Assert.True(result.GetProperty("agreeing_reports").GetInt32() == 3, $"all three clients' reports of round 3 were checked: {json}");
            Assert.True(result.GetProperty("round").GetInt32() == 3, $"the last round: {json}");
        }
        Assert.Contains(File.ReadLines(edges[0].LogPath), l => l.Contains("model saved: " + federation.Scratch("edge-1-model"), StringComparison.Ordinal));
        foreach (var folder in new[] { "edge-1-model", "from-coordinator", "from-log" })
        {
            var package = Onnx.Artifacts.ArtifactPackage.Open(federation.Scratch(folder + "-package"));
            Assert.True(package.Manifest.ParametersSha256 == replayed, $"{folder}-package holds {package.Manifest.ParametersSha256}, not the replayed {replayed}");
            Assert.True(File.ReadAllBytes(federation.Scratch(folder + "/model.safetensors")).SequenceEqual(File.ReadAllBytes(federation.Scratch("from-log/model.safetensors"))),
                $"{folder}/model.safetensors is byte-identical to the offline rebuild's");
        }
        // A device started without --experiment when every experiment is finished says so and exits, instead of waiting forever.
        var late = new Cli.Demo.ChildProcess("late", Cli.Demo.Deployables.EdgeClient,
            ["--coordinator", federation.Url.ToString(), "--token-file", federation.Scratch("edge-1.token"), "--artifacts", federation.Package.Directory, "--data", federation.Shards[0]],
            federation.Scratch("late.log"));
        await Federation.ExitsCleanlyAsync(late, 120);
        late.Dispose();
        Assert.Contains(File.ReadLines(federation.Scratch("late.log")), l => l.Contains("every experiment on", StringComparison.Ordinal) && l.Contains("--wait", StringComparison.Ordinal));

        // Earlier rounds too, and an unknown experiment or a round not closed is one line and exit code 2.
        var atOne = CliRunner.Run("model", "--round-log", federation.DatabasePath, "--experiment", id, "--artifacts", federation.Package.Directory,
            "--round", "1", "--out", federation.Scratch("round-1"), "--json");
        Assert.True(atOne.ExitCode == 0 && JsonDocument.Parse(atOne.Output).RootElement.GetProperty("round").GetInt32() == 1, atOne.Error);
        foreach (var (args, expected) in new[]
        {
            (new[] { "--experiment", "exp-nope" }, "no experiment 'exp-nope'"),
            (new[] { "--experiment", id, "--round", "9" }, "--round 9"),
        })
        {
            var bad = CliRunner.Run(["model", "--round-log", federation.DatabasePath, "--artifacts", federation.Package.Directory, "--out", federation.Scratch("bad"), .. args]);
            Assert.True(bad.ExitCode == 2 && bad.Error.Contains(expected, StringComparison.Ordinal) && bad.Error.Trim().Split('\n').Length == 1,
                $"exit {bad.ExitCode}, stderr: {bad.Error}");
        }
    }

    [Fact]
    public async Task A_client_killed_mid_round_does_not_stop_the_round_and_its_restart_catches_up()
    {
        using var federation = new Federation(shards: 3);
        await federation.StartCoordinatorAsync();
        var id = await federation.CreateExperimentAsync(rounds: 2, minClients: 3, deadlineSeconds: 10);
        var edge1 = await federation.StartEdgeAsync(1, id);
        var edge2 = await federation.StartEdgeAsync(2, id);
        Cli.Demo.ChildProcess? victim = null;
        victim = await federation.StartEdgeAsync(3, id, line =>
        {
            if (line.Contains("round 1: training", StringComparison.Ordinal))
                victim?.Kill();
        });

        var afterRound1 = await federation.WaitForAsync(id, e => Federation.RoundIs(e, 1, "Completed"), 120);
        var round1 = Federation.Rounds(afterRound1).Single(r => r.GetProperty("round").GetInt32() == 1);
        Assert.True(victim.HasExited, "expected victim.HasExited");
        Assert.Equal(2, round1.GetProperty("aggregated").GetInt32());
        Assert.Equal(1, round1.GetProperty("missing").GetInt32());

        // The same device comes back (same token): it replays round 1 and takes part in round 2.
        var restarted = await federation.StartEdgeAsync(3, id, logName: "edge-3-restarted");
        foreach (var edge in new[] { edge1, edge2, restarted })
            await Federation.ExitsCleanlyAsync(edge, 180);
        Assert.Contains(File.ReadLines(restarted.LogPath), l => l.Contains("caught up from round 0 to 1", StringComparison.Ordinal));
        var experiment = await federation.ExperimentAsync(id);
        Assert.Equal(3, Federation.Rounds(experiment).Single(r => r.GetProperty("round").GetInt32() == 2).GetProperty("aggregated").GetInt32());
        var fingerprints = new[] { edge1, edge2, restarted }.Select(Federation.FinalFingerprint).Distinct();
        Assert.Equal(await federation.ReplayAsync(id), Assert.Single(fingerprints));
    }

    [Fact]
    public async Task A_coordinator_killed_mid_experiment_restarts_from_its_database_and_loses_no_round()
    {
        using var federation = new Federation(shards: 2);
        var coordinator = await federation.StartCoordinatorAsync();
        var id = await federation.CreateExperimentAsync(rounds: 3, minClients: 2, deadlineSeconds: 60);
        // Killed the moment a client has applied round 1: round 2 is opening or open, packets may be in flight.
        var killed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var edge1 = await federation.StartEdgeAsync(1, id, line =>
        {
            if (line.Contains("round 1 applied", StringComparison.Ordinal))
            {
                coordinator.Kill();
                killed.TrySetResult();
            }
        });
        var edge2 = await federation.StartEdgeAsync(2, id);
        await killed.Task.WaitAsync(TimeSpan.FromSeconds(120));
        await coordinator.WaitAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(10));

        await Task.Delay(1000); // the clients see the connection drop and back off
        await federation.StartCoordinatorAsync("coordinator-restarted");
        foreach (var edge in new[] { edge1, edge2 })
            await Federation.ExitsCleanlyAsync(edge, 180);

        var experiment = await federation.ExperimentAsync(id);
        Assert.Equal("Completed", experiment.GetProperty("state").GetString());
        Assert.Equal([1, 2, 3], Federation.Rounds(experiment).Where(r => r.GetProperty("state").GetString() == "Completed").Select(r => r.GetProperty("round").GetInt32()));
        foreach (var e in new[] { edge1, edge2 })
        {
            // The whole log in the message: a miss here has been seen once under load and not explained yet.
            Assert.True(File.ReadLines(e.LogPath).Any(l => l.Contains("reconnected", StringComparison.Ordinal)),
                $"{e.Name} logged no reconnect after the coordinator was killed:\n{File.ReadAllText(e.LogPath)}");
        }
        // Edge 1 applied round 1 before the kill and never again; its final model equals a replay of the log
        // the restarted coordinator holds, so round 1 in the log is the round 1 it applied: nothing redone, nothing lost.
        Assert.Single(File.ReadLines(edge1.LogPath), l => l.Contains("round 1 applied", StringComparison.Ordinal));
        Assert.Equal(await federation.ReplayAsync(id), Assert.Single(new[] { edge1, edge2 }.Select(Federation.FinalFingerprint).Distinct()));
    }

    [Fact]
    public async Task A_secure_experiment_with_distributed_noise_survives_a_coordinator_killed_mid_stage()
    {
        using var federation = new Federation(shards: 3);
        var coordinator = await federation.StartCoordinatorAsync();
        var id = await federation.CreateExperimentAsync(rounds: 1, minClients: 3, deadlineSeconds: 120,
            secureAggregation: new { threshold = 2 }, differentialPrivacy: new { noiseMultiplier = 1.0, clipNorm = 0.05, noise = "distributed" });
        // Killed the moment a client has sent its encrypted shares in round 1: the next stages happen after the restart.
        var killed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var edges = new List<Cli.Demo.ChildProcess>
        {
            await federation.StartEdgeAsync(1, id, line =>
            {
                if (line.Contains("round 1: shares for", StringComparison.Ordinal) && !killed.Task.IsCompleted)
                {
                    coordinator.Kill();
                    killed.TrySetResult();
                }
            }),
            await federation.StartEdgeAsync(2, id),
            await federation.StartEdgeAsync(3, id),
        };
        await killed.Task.WaitAsync(TimeSpan.FromSeconds(120));
        await federation.StartCoordinatorAsync("coordinator-restarted");
        foreach (var edge in edges)
            await Federation.ExitsCleanlyAsync(edge, 240);

        var experiment = await federation.ExperimentAsync(id);
        Assert.Equal("Completed", experiment.GetProperty("state").GetString());
        var rounds = Federation.Rounds(experiment).ToList();
        Assert.All(rounds, r => Assert.True(r.GetProperty("state").GetString() == "Completed" && r.GetProperty("aggregated").GetInt32() >= 2,
            $"round {r.GetProperty("round")} is {r.GetProperty("state")} with {r.GetProperty("aggregated")} inputs: {r}"));
        var privacy = Assert.Single(rounds).GetProperty("metrics").GetProperty("privacy");
        Assert.True(privacy.GetProperty("secureAggregation").GetBoolean(), $"the round is recorded as secure: {privacy}");
        // All three of three clients sampled (q = 1) at z = 1: the accountant's epsilon, in the round log and the status view.
        double epsilon = Core.Privacy.RdpAccountant.Epsilon(1.0, 1.0, 1, 1e-5).Epsilon;
        Assert.Equal(epsilon, privacy.GetProperty("epsilon").GetDouble(), 9);
        Assert.Equal(epsilon, experiment.GetProperty("privacy").GetProperty("epsilonSpent").GetDouble(), 9);
        // No client's gamma ever reached the coordinator: every stored packet is a masked input.
        foreach (var r in rounds)
        {
            var detail = await federation.Admin.GetFromJsonAsync<JsonElement>($"api/experiments/{id}/rounds/{r.GetProperty("round").GetInt32()}");
            Assert.All(detail.GetProperty("assignments").EnumerateArray().Where(a => a.GetProperty("state").GetString() == "Received"),
                a => Assert.Equal(JsonValueKind.Null, a.GetProperty("trainLoss").ValueKind));
        }
        var fingerprints = edges.Select(Federation.FinalFingerprint).Distinct().ToList();
        Assert.Equal(await federation.ReplayAsync(id), Assert.Single(fingerprints));
    }

    [Fact]
    public async Task Bad_messages_over_a_real_socket_are_rejected_and_the_round_still_completes()
    {
        using var federation = new Federation(shards: 1);
        await federation.StartCoordinatorAsync();
        var id = await federation.CreateExperimentAsync(rounds: 1, minClients: 2, deadlineSeconds: 60);
        var descriptor = Wire.Deserialize<ExperimentDescriptor>(await federation.Admin.GetByteArrayAsync($"api/experiments/{id}/descriptor"));

        await using var anonymous = federation.Hub(null);
        await Assert.ThrowsAnyAsync<HttpRequestException>(() => anonymous.StartAsync());
        await using var forged = federation.Hub("ferret_forged-token");
        await Assert.ThrowsAnyAsync<HttpRequestException>(() => forged.StartAsync());

        // Two enrolled clients over WebSockets; the round waits for both.
        await using var hub = federation.Hub(await federation.EnrolClientAsync());
        await using var other = federation.Hub(await federation.EnrolClientAsync());
        var assigned = new TaskCompletionSource<RoundAssignment>(TaskCreationOptions.RunContinuationsAsynchronously);
        var completed = new TaskCompletionSource<RoundEvent>(TaskCreationOptions.RunContinuationsAsynchronously);
        hub.On<RoundAssignment>(RoundsProtocol.Assignment, a => assigned.TrySetResult(a));
        hub.On<RoundEvent>(RoundsProtocol.RoundEvent, e =>
        {
            if (e.Kind == RoundEvent.Completed)
                completed.TrySetResult(e);
        });
        foreach (var h in new[] { hub, other })
        {
            await h.StartAsync();
            await h.InvokeAsync<JoinResult>(RoundsProtocol.Join, id, null);
        }
        var assignment = await assigned.Task.WaitAsync(TimeSpan.FromSeconds(30));

        async Task<string?> Submit(HubConnection h, byte[] packet) => (await h.InvokeAsync<SubmitResult>(RoundsProtocol.SubmitUpdate, id, assignment.Round, packet)).Reason;
        Assert.Contains("malformed", await Submit(hub, [0x93, 0xc1, 0xff]));
        Assert.Contains("experiment", await Submit(hub, Packet(descriptor, assignment.Round, experimentId: "exp-other")));
        Assert.Contains("round", await Submit(hub, Packet(descriptor, assignment.Round + 1)));
        Assert.Contains("exceeds the message limit", await Submit(hub, new byte[(4 * 1024 * 1024) + 1]));
        Assert.Null(await Submit(hub, Packet(descriptor, assignment.Round)));
        Assert.Contains("replay", await Submit(hub, Packet(descriptor, assignment.Round)));
        Assert.Null(await Submit(other, Packet(descriptor, assignment.Round)));
        var done = await completed.Task.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(2, done.Aggregated);
        Assert.Contains("late", await Submit(other, Packet(descriptor, assignment.Round)));

        // A message past SignalR's own limit closes that connection, and only that connection.
        await using var flooder = federation.Hub(await federation.EnrolClientAsync());
        await flooder.StartAsync();
        await Assert.ThrowsAnyAsync<Exception>(() => flooder.InvokeAsync<SubmitResult>(RoundsProtocol.SubmitUpdate, id, 1, new byte[12 * 1024 * 1024]));
        var experiment = await federation.ExperimentAsync(id);
        Assert.Equal("Completed", experiment.GetProperty("state").GetString());
        Assert.Equal(6, experiment.GetProperty("rejections").GetInt64());
        Assert.Equal(1, Assert.Single(Wire.Deserialize<GlobalUpdate[]>(await federation.Admin.GetByteArrayAsync($"api/experiments/{id}/updates?after=0"))).Round);
    }

    [Fact]
    public async Task The_demo_runs_to_the_end_keeps_its_dashboard_open_with_a_fresh_sign_in_link_and_stops_cleanly_on_cancel()
    {
        var artifacts = Directory.CreateTempSubdirectory("ferret-e2e-demo-").FullName;
        var links = System.Threading.Channels.Channel.CreateUnbounded<string>();
        var lines = new System.Collections.Concurrent.ConcurrentQueue<string>();
        using var stop = new CancellationTokenSource();
        try
        {
            var summaryPath = Path.Combine(artifacts, "summary.json");
            var demo = CliRunner.RunAsync(line =>
            {
                lines.Enqueue(line);
                if (line.StartsWith("dashboard: ", StringComparison.Ordinal))
                    links.Writer.TryWrite(line["dashboard: ".Length..].Split(' ')[0]);
            }, stop.Token, "demo", "--clients", "2", "--rounds", "2", "--artifacts", Path.Combine(artifacts, "ferret-demo-base"), "--timeout", "1800", "--keep-open", "--json", summaryPath);
            // One link at the start to watch the rounds live, a fresh one after them: each signs in once.
            async Task<string> NextLink()
            {
                var next = links.Reader.ReadAsync().AsTask();
                var first = await Task.WhenAny(next, demo).WaitAsync(TimeSpan.FromSeconds(1800));
                Assert.True(first == next, $"the demo ended before printing its dashboard link: {(demo.IsCompleted ? $"exit code {demo.Result.ExitCode}, {demo.Result.Error}" : "")}");
                return await next;
            }
            var atStart = await NextLink();
            var afterRounds = await NextLink();
            Assert.NotEqual(atStart, afterRounds);
            Assert.False(demo.IsCompleted, "with --keep-open the demo waits for Ctrl+C after the rounds");
            var url = new Uri(afterRounds);
            Assert.StartsWith("#signin=signin_", url.Fragment, StringComparison.Ordinal);
            using var browser = new HttpClient { BaseAddress = new Uri(url.GetLeftPart(UriPartial.Authority)) };
            var signIn = await browser.PostAsJsonAsync("api/sign-in", new { code = url.Fragment["#signin=".Length..] });
            Assert.True(signIn.IsSuccessStatusCode, $"the link after the rounds signs in: {await signIn.Content.ReadAsStringAsync()}");
            var key = (await signIn.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("key").GetString();
            browser.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", key);
            var experiment = Assert.Single((await browser.GetFromJsonAsync<JsonElement>("api/experiments")).EnumerateArray());
            Assert.Equal("Completed", experiment.GetProperty("state").GetString());
            Assert.True((await browser.GetAsync("/")).IsSuccessStatusCode, "the dashboard page is served");

            stop.Cancel();
            var (code, error) = await demo.WaitAsync(TimeSpan.FromSeconds(60));
            Assert.True(code == 0, $"the demo stops cleanly on Ctrl+C: exit code {code}, {error}");
            // It exported the pretrained base where --artifacts said and kept the tuned model beside it, as a Hugging Face folder and a package.
            Assert.True(File.Exists(Path.Combine(artifacts, "ferret-demo-base", "manifest.json")), "the base was exported where --artifacts said");
            Assert.Equal(["demo-model", "demo-model-package", "ferret-demo-base"], Directory.GetDirectories(artifacts).Select(Path.GetFileName).Order(StringComparer.Ordinal));
            var saved = Path.Combine(artifacts, "demo-model");
            Assert.True(File.Exists(Path.Combine(saved, "config.json")) && File.Exists(Path.Combine(saved, "model.safetensors")), "the demo model is a Hugging Face folder");
            var output = string.Join('\n', lines);
            Assert.True(lines.Any(l => l.Trim() == $"model saved: {saved}"), $"the demo says where the model went: {output}");
            // Nothing it printed points into its temporary folder, and that folder (the one whose logs name this experiment) is gone.
            Assert.DoesNotContain(Path.Combine(Path.GetTempPath(), "ferret-demo-"), output, StringComparison.Ordinal);
            var id = experiment.GetProperty("id").GetString()!;
            var left = Directory.GetDirectories(Path.GetTempPath(), "ferret-demo-*")
                .Where(d => Directory.EnumerateFiles(d, "*.log").Any(f => File.ReadAllText(f).Contains(id, StringComparison.Ordinal))).ToList();
            Assert.True(left.Count == 0, $"the demo's temporary folder is left behind: {string.Join(", ", left)}");
            using var summary = System.Text.Json.JsonDocument.Parse(File.ReadAllText(summaryPath));
            var root = summary.RootElement;
            foreach (var field in new[] { "algorithm", "rounds", "metric", "metric_before", "metric_after", "eval_loss_before", "eval_loss_after", "fingerprint", "seconds", "per_round" })
                Assert.True(root.TryGetProperty(field, out _), $"the demo's JSON summary has no '{field}'");
            Assert.Equal("ferret", root.GetProperty("algorithm").GetString());
            Assert.Equal(2, root.GetProperty("rounds").GetInt32());
            Assert.Equal(2, root.GetProperty("per_round").GetArrayLength());
            foreach (var round in root.GetProperty("per_round").EnumerateArray())
            {
                Assert.Equal(2, round.GetProperty("packets").GetInt32());
                Assert.True(round.GetProperty("bytes_up").GetInt64() > 0, "a round's packets carry bytes");
                Assert.True(round.GetProperty("latency_seconds").GetDouble() > 0, "a round takes time");
            }
            Assert.Equal(64, root.GetProperty("fingerprint").GetString()!.Length);
        }
        finally
        {
            stop.Cancel();
            Directory.Delete(artifacts, recursive: true);
        }
    }

    [Fact]
    public async Task An_edge_client_meets_a_bad_token_bad_data_or_another_model_with_one_clear_line_and_exit_code_2()
    {
        using var federation = new Federation(shards: 1);
        await federation.StartCoordinatorAsync();
        var id = await federation.CreateExperimentAsync(rounds: 1, minClients: 5, deadlineSeconds: 60);

        File.WriteAllText(federation.Scratch("edge-9.token"), "ferret_not-a-real-token");
        var badToken = await federation.StartEdgeAsync(9, id, data: federation.Shards[0]);
        var broken = federation.Scratch("broken.jsonl");
        File.WriteAllText(broken, "{\"instruction\": \"ok\", \"output\": \"fine\"}\n{not json\n");
        var badData = new Cli.Demo.ChildProcess("bad-data", Cli.Demo.Deployables.EdgeClient,
            ["--coordinator", federation.Url.ToString(), "--token", "unused", "--artifacts", federation.Package.Directory, "--data", broken, "--malformed", "fail"],
            federation.Scratch("bad-data.log"));
        var other = federation.Scratch("other-model");
        Onnx.Export.ModelExporter.Export(new Onnx.Export.ModelSource.FromPreset("tiny-gpt2", 2), other, overwrite: false);
        var otherModel = await federation.StartEdgeAsync(1, id, artifacts: other);
        var noSuchExperiment = await federation.StartEdgeAsync(2, "exp-nope", data: federation.Shards[0]);

        foreach (var (process, expected) in new[] { (badToken, "refused"), (badData, "broken.jsonl:2"), (otherModel, "starts from"), (noSuchExperiment, "exp-nope") })
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            await process.WaitAsync(timeout.Token);
            Assert.Equal(2, process.ExitCode);
            var log = File.ReadAllText(process.LogPath);
            Assert.Contains(expected, log);
            Assert.DoesNotContain("   at ", log); // a sentence, not a stack trace
        }
        badData.Dispose();
    }

    [Fact]
    public async Task A_client_whose_device_fails_its_check_reports_why_and_does_not_join()
    {
        using var federation = new Federation(shards: 1);
        await federation.StartCoordinatorAsync();
        var id = await federation.CreateExperimentAsync(rounds: 1, minClients: 2, deadlineSeconds: 60);
        var events = new List<ClientEvent>();
        var reported = new TaskCompletionSource<ClientEvent>(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var observer = federation.Hub(Federation.AdminKey);
        observer.On<ClientEvent>(RoundsProtocol.ClientEvent, e =>
        {
            lock (events)
                events.Add(e);
            if (e.Kind == ClientEvent.DeviceCheck)
                reported.TrySetResult(e);
        });
        await observer.StartAsync();
        await observer.InvokeAsync(RoundsProtocol.Subscribe, id);

        // This machine's build has no CUDA provider: the check fails the way a broken GPU would, before any round.
        var edge = await federation.StartEdgeAsync(1, id, extra: ["--device", "cuda"]);
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(120));
        await edge.WaitAsync(timeout.Token);
        Assert.True(edge.ExitCode == 3, $"a failed device check exits with 3, got {edge.ExitCode}: {File.ReadAllText(edge.LogPath)}");
        var log = File.ReadAllText(edge.LogPath);
        Assert.Contains("failed its check against the cpu, so this client does not join", log);
        Assert.DoesNotContain("   at ", log);

        var e = await reported.Task.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.StartsWith("cuda:0: FAILED: ", e.Detail);
        Assert.Contains("CUDA execution provider is not available", e.Detail);
        lock (events)
            Assert.DoesNotContain(events, x => x.Kind == ClientEvent.Joined);
    }

    private static byte[] Packet(ExperimentDescriptor descriptor, int round, string? experimentId = null) => TestPackets.Ferret(descriptor, round, experimentId);
}
