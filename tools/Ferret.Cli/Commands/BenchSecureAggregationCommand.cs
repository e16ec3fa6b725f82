using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Ferret.Cli.Demo;
using Ferret.Core.Algorithms;
using Ferret.Core.Packets;
using Ferret.Core.Privacy;
using Ferret.Core.Projection;
using Ferret.Core.Protocol;
using Ferret.EdgeClient;
using Microsoft.AspNetCore.SignalR.Client;
using Microsoft.Extensions.DependencyInjection;
using Spectre.Console;

namespace Ferret.Cli.Commands;

/// <summary>
/// <c>ferret bench secure-aggregation</c>: what secure aggregation costs per round. For each client count it starts a
/// coordinator process on loopback, connects that many lightweight clients over WebSockets (no training: each sends a
/// Ferret-shaped packet of random gammas with the norm-adaptive seed counts), runs a few rounds in the clear and a few
/// under secure aggregation (the edge client's own stage code), and reports bytes per client per round and the
/// coordinator's CPU time per round (Linux /proc).
/// </summary>
internal static class BenchSecureAggregationCommand
{
    private sealed record Row(string Mode, int Clients, int Threshold, int Neighbours, int Rounds, double UpBytesPerClient, double DownBytesPerClient,
        double CoordinatorCpuSecondsPerRound, double RoundSeconds, double Aggregated);

    public static Command Create()
    {
        var artifacts = new Option<DirectoryInfo>("--artifacts") { Description = "Artifact package the experiments name (ferret export).", Required = true };
        var clients = new Option<string>("--clients") { Description = "Client counts, comma-separated.", DefaultValueFactory = _ => "10,50,200" };
        var rounds = new Option<int>("--rounds") { Description = "Rounds per run (the first is not measured).", DefaultValueFactory = _ => 3 };
        var neighbours = new Option<int>("--neighbours") { Description = "SecAgg+ neighbours per client (0: everyone).", DefaultValueFactory = _ => 0 };
        var threshold = new Option<double>("--threshold-fraction") { Description = "Threshold as a fraction of a client's neighbourhood (itself included).", DefaultValueFactory = _ => 2.0 / 3 };
        var mode = new Option<string>("--mode") { Description = "plain, secure or both.", DefaultValueFactory = _ => "both" };
        mode.AcceptOnlyFromAmong("plain", "secure", "both");
        var json = new Option<bool>("--json") { Description = "Print one JSON array instead of a table." };
        var command = new Command("secure-aggregation", "Bytes per client and coordinator CPU per round, in the clear and under secure aggregation (Linux).")
        {
            artifacts, clients, rounds, neighbours, threshold, mode, json,
        };
        CommandAction.SetAsync(command, async (parse, ct) =>
        {
            if (!OperatingSystem.IsLinux())
                throw new NotSupportedException("bench secure-aggregation reads /proc and runs on Linux only.");
            string package = parse.GetRequiredValue(artifacts).FullName;
            if (!File.Exists(Path.Combine(package, "manifest.json")))
                throw new DirectoryNotFoundException($"'{package}' is not an artifact package (no manifest.json).");
            var counts = parse.GetValue(clients)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                .Select(c => int.TryParse(c, CultureInfo.InvariantCulture, out var n) && n is >= 2 and <= 5000 ? n : throw new ArgumentException($"--clients: '{c}' is not a count in 2..5000.")).ToList();
            int r = parse.GetValue(rounds);
            if (r is < 2 or > 100)
                throw new ArgumentException($"--rounds {r} is outside 2..100 (the first round is not measured).");
            double fraction = parse.GetValue(threshold);
            if (!(fraction is > 0 and <= 1))
                throw new ArgumentException($"--threshold-fraction {fraction.ToString(CultureInfo.InvariantCulture)} is outside (0, 1].");
            int k = parse.GetValue(neighbours);
            if (k < 0)
                throw new ArgumentException($"--neighbours {k} is negative.");
            bool[] modes = parse.GetValue(mode) switch { "plain" => [false], "secure" => [true], _ => [false, true] };
            var rows = new List<Row>();
            foreach (int n in counts)
            {
                foreach (bool secure in modes)
                {
                    // Progress goes to stderr, so --json output stays one clean document.
                    Console.Error.WriteLine($"{n} clients, {(secure ? "secure aggregation" : "in the clear")}...");
                    var row = await RunAsync(package, n, secure, r, k, fraction, ct).ConfigureAwait(false);
                    rows.Add(row);
                    Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture,
                        $"  up {row.UpBytesPerClient:F0} B, down {row.DownBytesPerClient:F0} B per client per round; coordinator CPU {row.CoordinatorCpuSecondsPerRound:F3} s per round; latency {row.RoundSeconds:F2} s; {row.Aggregated:F1} aggregated"));
                }
            }
            if (parse.GetValue(json))
            {
                Console.WriteLine(JsonSerializer.Serialize(rows.Select(x => new
                {
                    mode = x.Mode,
                    clients = x.Clients,
                    threshold = x.Threshold,
                    neighbours = x.Neighbours,
                    rounds_measured = x.Rounds,
                    up_bytes_per_client_per_round = x.UpBytesPerClient,
                    down_bytes_per_client_per_round = x.DownBytesPerClient,
                    coordinator_cpu_seconds_per_round = x.CoordinatorCpuSecondsPerRound,
                    round_seconds = x.RoundSeconds,
                    aggregated_per_round = x.Aggregated,
                })));
                return 0;
            }
            var table = new Table().AddColumns("clients", "mode", "threshold", "neighbours", "up / client / round", "down / client / round", "coordinator CPU / round", "round latency", "aggregated");
            foreach (var x in rows)
            {
                table.AddRow(x.Clients.ToString(CultureInfo.InvariantCulture), x.Mode, x.Mode == "plain" ? "-" : x.Threshold.ToString(CultureInfo.InvariantCulture),
                    x.Mode == "plain" ? "-" : x.Neighbours.ToString(CultureInfo.InvariantCulture), Reports.ComparisonReport.Bytes(x.UpBytesPerClient),
                    Reports.ComparisonReport.Bytes(x.DownBytesPerClient), x.CoordinatorCpuSecondsPerRound.ToString("F3", CultureInfo.InvariantCulture) + " s",
                    x.RoundSeconds.ToString("F2", CultureInfo.InvariantCulture) + " s", x.Aggregated.ToString("F1", CultureInfo.InvariantCulture));
            }
            AnsiConsole.Write(table);
            return 0;
        });
        return command;
    }

    private static async Task<Row> RunAsync(string package, int n, bool secure, int rounds, int neighbours, double thresholdFraction, CancellationToken ct)
    {
        var work = Directory.CreateTempSubdirectory("ferret-bench-secagg-").FullName;
        var hubs = new List<HubConnection>();
        var participants = new List<SecureAggregationParticipant>();
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        try
        {
            const string adminKey = "bench-secagg-admin";
            var (coordinator, url) = await CoordinatorProcess.StartAsync("coordinator", "http://127.0.0.1:0", adminKey, Path.Combine(work, "coordinator.db"),
                Path.GetDirectoryName(Path.GetFullPath(package))!, Path.Combine(work, "coordinator.log"),
                ["--Logging:LogLevel:Default", "Warning", "--Logging:LogLevel:Microsoft.Hosting.Lifetime", "Information", "--Ferret:EngineTickMilliseconds", "100"], ct)
                .ConfigureAwait(false);
            using var coordinatorProcess = coordinator;
            using var admin = new HttpClient { BaseAddress = url };
            admin.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", adminKey);
            int degree = SecureRound.Degree(n, neighbours);
            int threshold = Math.Clamp((int)Math.Ceiling(thresholdFraction * (degree + 1)), 2, degree + 1);
            var body = new Dictionary<string, object?>
            {
                ["name"] = "bench-secagg",
                ["algorithm"] = "ferret",
                ["artifact"] = Path.GetFileName(Path.GetFullPath(package).TrimEnd(Path.DirectorySeparatorChar)),
                ["rounds"] = rounds,
                ["fraction"] = 1.0,
                ["minClients"] = n,
                ["roundDeadlineSeconds"] = 600,
                // Generous stage deadlines: the bench measures what the stages cost, not whether a loaded machine meets a minute.
                ["secureAggregation"] = secure ? new { threshold, neighbours, keysSeconds = 1800, sharesSeconds = 1800, unmaskSeconds = 1800 } : null,
            };
            var created = await CoordinatorProcess.PostAsync(admin, "api/experiments", body, ct).ConfigureAwait(false);
            string experiment = created.GetProperty("id").GetString()!;
            var descriptor = Wire.Deserialize<ExperimentDescriptor>(await admin.GetByteArrayAsync(new Uri($"api/experiments/{experiment}/descriptor", UriKind.Relative), ct).ConfigureAwait(false));

            long down = 0;
            var completed = new int[rounds + 1];
            var afterFirst = new TaskCompletionSource<(double Cpu, long Down)>(TaskCreationOptions.RunContinuationsAsynchronously);
            var finished = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            var latencies = new List<double>();
            var aggregated = new List<int>();
            using var gate = new SemaphoreSlim(16);
            await Task.WhenAll(Enumerable.Range(0, n).Select(async i =>
            {
                await gate.WaitAsync(ct).ConfigureAwait(false);
                try
                {
                    var enrolment = await CoordinatorProcess.PostAsync(admin, "api/enrolments", new { label = "bench" }, ct).ConfigureAwait(false);
                    var client = await CoordinatorProcess.PostAsync(admin, "api/clients/enrol", new { enrolmentToken = enrolment.GetProperty("token").GetString(), name = $"bench-{i}" }, ct)
                        .ConfigureAwait(false);
                    string token = client.GetProperty("token").GetString()!, id = client.GetProperty("clientId").GetString()!;
                    var hub = new HubConnectionBuilder()
                        .WithUrl(new Uri(url, RoundsProtocol.Path), o => o.AccessTokenProvider = () => Task.FromResult<string?>(token))
                        .AddMessagePackProtocol()
                        .Build();
                    void Count(object message) => Interlocked.Add(ref down, Wire.Serialize(message).Length);
                    hub.On<ShareKeysRequest>(RoundsProtocol.ShareKeysRequest, Count);
                    hub.On<MaskedInputRequest>(RoundsProtocol.MaskedInputRequest, Count);
                    hub.On<UnmaskRequest>(RoundsProtocol.UnmaskRequest, Count);
                    hub.On<RoundEvent>(RoundsProtocol.RoundEvent, e =>
                    {
                        if (e.Kind != RoundEvent.Completed)
                            return;
                        Interlocked.Add(ref down, e.BytesDown);
                        if (Interlocked.Increment(ref completed[e.Round]) != n)
                            return;
                        lock (latencies)
                        {
                            latencies.Add(e.Seconds);
                            aggregated.Add(e.Aggregated);
                        }
                        if (e.Round == 1)
                            afterFirst.TrySetResult((ProcessStats.Sample(coordinator.Id).CpuSeconds, Interlocked.Read(ref down)));
                        if (e.ExperimentEnded)
                            finished.TrySetResult();
                    });
                    var random = new Random(i + 1);
                    SecureAggregationParticipant? participant = null;
                    if (secure)
                    {
                        participant = new SecureAggregationParticipant(hub, descriptor, _ => { }, Transient.Is) { ClientId = id };
                        lock (participants)
                            participants.Add(participant);
                        _ = participant.RunAsync(stop.Token);
                    }
                    hub.On<RoundAssignment>(RoundsProtocol.Assignment, a => _ = Task.Run(async () =>
                    {
                        var packet = Packet(descriptor, a.Round, random);
                        if (participant is null)
                            await hub.InvokeAsync<SubmitResult>(RoundsProtocol.SubmitUpdate, descriptor.Id, a.Round, Wire.Serialize<ClientUpdate>(packet), stop.Token).ConfigureAwait(false);
                        else if (await participant.BeginAsync(a, stop.Token).ConfigureAwait(false))
                            participant.InputReady(a.Round, packet);
                    }, stop.Token));
                    await hub.StartAsync(ct).ConfigureAwait(false);
                    lock (hubs)
                        hubs.Add(hub);
                    await hub.InvokeAsync<JoinResult>(RoundsProtocol.Join, experiment, null, ct).ConfigureAwait(false);
                }
                finally
                {
                    gate.Release();
                }
            })).ConfigureAwait(false);

            var (cpuStart, downStart) = await afterFirst.Task.WaitAsync(TimeSpan.FromMinutes(30), ct).ConfigureAwait(false);
            await finished.Task.WaitAsync(TimeSpan.FromMinutes(30), ct).ConfigureAwait(false);
            double cpuEnd = ProcessStats.Sample(coordinator.Id).CpuSeconds;
            int measured = rounds - 1;
            var view = await admin.GetFromJsonAsync<JsonElement>(new Uri($"api/experiments/{experiment}", UriKind.Relative), ct).ConfigureAwait(false);
            var log = view.GetProperty("roundLog").EnumerateArray().Where(x => x.GetProperty("round").GetInt32() > 1 && x.GetProperty("state").GetString() == "Completed").ToList();
            double up = log.Sum(x => x.GetProperty("metrics").GetProperty("bytesUp").GetDouble());
            return new Row(secure ? "secure" : "plain", n, threshold, degree, measured, up / (n * (double)measured), (Interlocked.Read(ref down) - downStart) / (n * (double)measured),
                (cpuEnd - cpuStart) / measured, latencies.Skip(1).DefaultIfEmpty().Average(), aggregated.Skip(1).DefaultIfEmpty().Average());
        }
        finally
        {
            await stop.CancelAsync().ConfigureAwait(false);
            foreach (var hub in hubs)
                await hub.DisposeAsync().ConfigureAwait(false);
            foreach (var p in participants)
                p.Dispose();
            Directory.Delete(work, recursive: true);
        }
    }

    /// <summary>
    /// A Ferret-shaped packet: norm-adaptive seed counts from log-normal block norms (sigma 1.5, which gives tiny-llama
    /// packets of about the size real training sends, 4-5 KiB), random gammas.
    /// </summary>
    private static FerretUpdate Packet(ExperimentDescriptor d, int round, Random random)
    {
        int k = d.Settings.CandidateSeeds;
        double Normal() => Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble());
        var counts = Projector.SeedCounts(d.BlockLengths.Select(_ => Math.Exp(1.5 * Normal())).ToArray(), k);
        var seeds = new List<int>();
        var blocks = new List<int>();
        var gammas = new List<float>();
        for (int b = 0; b < counts.Length; b++)
        {
            foreach (int s in Enumerable.Range(0, k).OrderBy(_ => random.Next()).Take(counts[b]).Order())
            {
                seeds.Add(s);
                blocks.Add(b);
                gammas.Add((float)((random.NextDouble() - 0.5) * 0.2));
            }
        }
        return new FerretUpdate
        {
            ExperimentId = d.Id,
            Round = round,
            SampleCount = 100,
            Stats = new TrainingStats { Loss = 3.0, ForwardPasses = 40, BackwardPasses = 40 },
            SeedIndices = [.. seeds],
            Blocks = [.. blocks],
            Gammas = [.. gammas],
        };
    }
}
