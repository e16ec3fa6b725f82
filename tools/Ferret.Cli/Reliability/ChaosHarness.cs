using System.Diagnostics;
using System.Security.Cryptography;
using System.Text.Json;
using Ferret.Cli.Demo;

using Ferret.Core.Algorithms;
using Ferret.Core.Packets;
using Ferret.Core.Parameters;
using Ferret.Core.Protocol;
using Microsoft.Data.Sqlite;

namespace Ferret.Cli.Reliability;

/// <summary>What <c>ferret bench chaos</c> is asked to do.</summary>
internal sealed record ChaosOptions(int Kills, int Clients, int Rounds, int Seed, bool Keep = false);

/// <summary>What a chaos run measured; the first seven are the <c>--json</c> keys the issue fixes.</summary>
internal sealed record ChaosReport(
    int Kills, int RoundsCompleted, int RoundsLost, int RoundsRedone, bool FingerprintsAgree, bool IntegrityOk, double RecoveryP99Ms,
    double RecoveryP50Ms, IReadOnlyDictionary<string, int> KillsByMoment, int ClientKills, int FingerprintReports, int FingerprintMismatches,
    int RoundsAbandoned, bool ExperimentsCompleted, double Seconds);

/// <summary>
/// <c>ferret bench chaos</c>: a coordinator and C edge-client processes on loopback running a Ferret and a
/// FedAvg experiment, while the coordinator is killed with SIGKILL N times and restarted on the same round log:
/// at random moments and at the kill points that are hardest to hit from outside (inside the aggregation
/// transaction, between persisting and broadcasting, while serving an artifact download, during a streamed
/// FedAvg upload). Edge clients are killed and restarted at random too. Every completed round the harness
/// observes is hashed; at the end the log must hold each with the same bytes (nothing lost, nothing redone),
/// every fingerprint any client reported must equal an independent replay of the log, and SQLite's
/// integrity check must pass. Recovery is the time from a kill until the federation makes progress again.
/// </summary>
internal sealed class ChaosHarness(ChaosOptions options, Action<string> say)
{
    private const string Random = "random";
    private readonly Random _random = new(options.Seed);
    private readonly Dictionary<string, Dictionary<int, string>> _observed = new(StringComparer.Ordinal);
    private readonly Dictionary<string, int> _killsByMoment = new(StringComparer.Ordinal);
    private readonly List<double> _recoveries = [];
    private readonly List<Edge> _edges = [];
    private int _redone;
    private int _clientKills;
    private int _incarnation;
    private long _progress;

    private sealed class Edge(string name, string experiment, string tokenFile, string data)
    {
        public string Name { get; } = name;

        public string Experiment { get; } = experiment;

        public string TokenFile { get; } = tokenFile;

        public string Data { get; } = data;

        public ChildProcess? Process { get; set; }

        public int Starts { get; set; }
    }

    public async Task<ChaosReport> RunAsync(CancellationToken ct)
    {
        var clock = Stopwatch.StartNew();
        using var bed = new Testbed("chaos") { Keep = options.Keep };
        say($"work folder {bed.Directory}");
        var moments = Schedule(options.Clients / 2 > 0);
        // The first kill point, if the run starts with one, is armed in the very first coordinator.
        bool armed = moments.Count > 0 && moments[0] != Random;
        await bed.StartCoordinatorAsync(NextName(), armed ? ["--Ferret:KillAt", moments[0]] : null, ct).ConfigureAwait(false);
        var shards = bed.WriteShards(options.Clients);
        int fedavgClients = options.Clients / 2, ferretClients = options.Clients - fedavgClients;
        var experiments = new List<ExperimentDescriptor> { await CreateAsync(bed, FederatedAlgorithms.Ferret, ferretClients, ct).ConfigureAwait(false) };
        if (fedavgClients > 0)
            experiments.Add(await CreateAsync(bed, FederatedAlgorithms.FedAvg, fedavgClients, ct).ConfigureAwait(false));
        foreach (var d in experiments)
            _observed[d.Id] = [];
        for (int i = 0; i < options.Clients; i++)
        {
            var (_, token) = await bed.EnrolAsync($"edge-{i + 1}", ct).ConfigureAwait(false);
            var tokenFile = bed.PathOf($"edge-{i + 1}.token");
            SecretFile.Write(tokenFile, token);
            var edge = new Edge($"edge-{i + 1}", experiments[i < ferretClients ? 0 : 1].Id, tokenFile, shards[i]);
            _edges.Add(edge);
            Start(bed, edge, bed.Package.Directory);
        }
        say($"{options.Clients} edge clients on {experiments.Count} experiments ({string.Join(", ", experiments.Select(e => $"{e.Algorithm} {e.Id}"))}), {options.Rounds} rounds each");

        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var monitor = MonitorAsync(bed, experiments, stop.Token);
        int kills = 0;
        for (; kills < options.Kills && !await AllCompletedAsync(bed, experiments, ct).ConfigureAwait(false); kills++)
        {
            string moment = moments[kills];
            if (moment == Random)
                await WaitForProgressAsync(TimeSpan.FromSeconds(60), ct).ConfigureAwait(false);
            string happened = await KillAsync(bed, moment, ct).ConfigureAwait(false);
            _killsByMoment[happened] = _killsByMoment.GetValueOrDefault(happened) + 1;
            long before = Interlocked.Read(ref _progress);
            var dead = Stopwatch.StartNew();
            // The next kill point, if any, is armed in the coordinator that replaces this one.
            string? armNext = kills + 1 < options.Kills && moments[kills + 1] != Random ? moments[kills + 1] : null;
            var restarted = await bed.StartCoordinatorAsync(NextName(), armNext is null ? null : ["--Ferret:KillAt", armNext], ct).ConfigureAwait(false);
            armed = armNext is not null;
            // Recovered when the federation moves again, or when an armed coordinator reaches its kill point (a round closing).
            bool recovered = await WaitAsync(() => Task.FromResult(Interlocked.Read(ref _progress) > before || restarted.HasExited), TimeSpan.FromSeconds(120), ct)
                .ConfigureAwait(false);
            if (recovered)
                _recoveries.Add(dead.Elapsed.TotalMilliseconds);
            say($"kill {kills + 1}/{options.Kills} ({happened}): {(recovered ? $"recovered in {dead.Elapsed.TotalSeconds:F1} s" : "no progress within 120 s")}{(armNext is null ? "" : $"; next coordinator armed at {armNext}")}");
        }
        if (armed && bed.Coordinator is { HasExited: false } still)
        {
            // The run ended early (the experiments completed) with an armed coordinator: replace it with a plain one.
            still.Kill();
            await still.WaitAsync(ct).ConfigureAwait(false);
        }
        if (bed.Coordinator is { HasExited: true })
            await bed.StartCoordinatorAsync(NextName(), ct: ct).ConfigureAwait(false);

        bool completed = await WaitAsync(() => AllCompletedAsync(bed, experiments, ct), TimeSpan.FromSeconds(60 + (options.Rounds * 30)), ct).ConfigureAwait(false);
        foreach (var edge in _edges)
        {
            if (edge.Process is { } p)
                await p.WaitAsync(ct).WaitAsync(TimeSpan.FromSeconds(120), ct).ConfigureAwait(false);
        }
        await stop.CancelAsync().ConfigureAwait(false);
        await monitor.ConfigureAwait(false);

        var verdict = await VerifyAsync(bed, experiments, ct).ConfigureAwait(false);
        bed.Coordinator?.Kill();
        if (bed.Coordinator is { } last)
            await last.WaitAsync(ct).ConfigureAwait(false);
        bool integrity = IntegrityOk(bed.DatabasePath);
        return new ChaosReport(kills, verdict.Completed, verdict.Lost, verdict.Redone + _redone, verdict.Mismatches == 0 && verdict.Reports > 0, integrity,
            Percentiles.Of(_recoveries, 0.99), Percentiles.Of(_recoveries, 0.50), _killsByMoment, _clientKills, verdict.Reports,
            verdict.Mismatches, verdict.Abandoned, completed, clock.Elapsed.TotalSeconds);
    }

    private string NextName() => $"coordinator-{_incarnation++}";

    private async Task<ExperimentDescriptor> CreateAsync(Testbed bed, string algorithm, int clients, CancellationToken ct) =>
        await bed.CreateExperimentAsync(new Dictionary<string, object?>
        {
            ["name"] = "chaos-" + algorithm,
            ["algorithm"] = algorithm,
            ["rounds"] = options.Rounds,
            ["fraction"] = 1.0,
            ["experimentSeed"] = (ulong)options.Seed,
            ["candidateSeeds"] = 64,
            ["localSteps"] = 2,
            ["microBatches"] = 1,
            ["localLearningRate"] = 0.05,
            ["serverLearningRate"] = algorithm == FederatedAlgorithms.Ferret ? 3.0 : null,
            ["minClients"] = clients,
            ["roundDeadlineSeconds"] = 20,
        }, ct).ConfigureAwait(false);

    /// <summary>
    /// Each kill's moment: kill points and random kills alternate, starting with the aggregation transaction, so
    /// even a one-kill run hits the hardest moment and four kill points in a row cover every one of them.
    /// </summary>
    private List<string> Schedule(bool streamed)
    {
        var points = new List<string> { KillPoints.AggregationTransaction, KillPoints.AfterPersistBeforeBroadcast, KillPoints.ArtifactDownload };
        if (streamed)
            points.Add(KillPoints.StreamedUpload);
        var all = new List<string>();
        for (int i = 0; all.Count < options.Kills; i++)
            all.Add(i % 2 == 0 ? points[(i / 2) % points.Count] : Random);
        return all;
    }

    private static void Start(Testbed bed, Edge edge, string artifacts)
    {
        edge.Starts++;
        edge.Process = bed.StartEdge(edge.Starts == 1 ? edge.Name : $"{edge.Name}-{edge.Starts}", edge.Experiment, edge.TokenFile, artifacts, edge.Data);
    }

    /// <summary>Kills the coordinator at the moment asked for; returns the moment it actually died at.</summary>
    private async Task<string> KillAsync(Testbed bed, string moment, CancellationToken ct)
    {
        var coordinator = bed.Coordinator!;
        if (moment == Random)
        {
            await Task.Delay(TimeSpan.FromMilliseconds(_random.Next(200, 3000)), ct).ConfigureAwait(false);
            if (_random.Next(2) == 0)
                await KillClientAsync(bed, ct).ConfigureAwait(false);
            coordinator.Kill();
            await coordinator.WaitAsync(ct).ConfigureAwait(false);
            return Random;
        }
        if (moment == KillPoints.ArtifactDownload)
        {
            // A device without the package: its download is what the armed coordinator dies serving.
            var edge = _edges[_random.Next(_edges.Count)];
            edge.Process?.Kill();
            _clientKills++;
            Start(bed, edge, bed.PathOf($"fresh-{edge.Name}-{edge.Starts}/tiny-gpt2"));
        }
        try
        {
            await coordinator.WaitAsync(ct).WaitAsync(TimeSpan.FromSeconds(120), ct).ConfigureAwait(false);
            return moment;
        }
        catch (TimeoutException)
        {
            coordinator.Kill(); // the point was not reached in time (the experiments may be ending): a plain kill
            await coordinator.WaitAsync(ct).ConfigureAwait(false);
            return Random;
        }
    }

    private async Task KillClientAsync(Testbed bed, CancellationToken ct)
    {
        var edge = _edges[_random.Next(_edges.Count)];
        if (edge.Process is not { HasExited: false } process)
            return;
        process.Kill();
        _clientKills++;
        await Task.Delay(TimeSpan.FromMilliseconds(_random.Next(300, 2000)), ct).ConfigureAwait(false);
        Start(bed, edge, bed.Package.Directory);
    }

    /// <summary>Polls the round log; hashes every completed round once it appears and notes any progress (a round opening or closing).</summary>
    private async Task MonitorAsync(Testbed bed, IReadOnlyList<ExperimentDescriptor> experiments, CancellationToken ct)
    {
        try
        {
            await PollAsync(bed, experiments, ct).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
        }
    }

    private async Task PollAsync(Testbed bed, IReadOnlyList<ExperimentDescriptor> experiments, CancellationToken ct)
    {
        var states = new Dictionary<string, string>(StringComparer.Ordinal);
        while (!ct.IsCancellationRequested)
        {
            foreach (var d in experiments)
            {
                if (await bed.TryGetAsync($"api/experiments/{d.Id}", ct).ConfigureAwait(false) is not { } view)
                    continue;
                string snapshot = string.Join(',', view.GetProperty("roundLog").EnumerateArray().Select(r => $"{r.GetProperty("round").GetInt32()}:{r.GetProperty("state").GetString()}"));
                if (!states.TryGetValue(d.Id, out var previous) || previous != snapshot)
                {
                    states[d.Id] = snapshot;
                    Interlocked.Increment(ref _progress);
                }
                await HashNewRoundsAsync(bed, d.Id, ct).ConfigureAwait(false);
            }
            try
            {
                await Task.Delay(200, ct).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    private async Task HashNewRoundsAsync(Testbed bed, string id, CancellationToken ct)
    {
        var seen = _observed[id];
        int after = seen.Count == 0 ? 0 : seen.Keys.Max();
        byte[] bytes;
        try
        {
            bytes = await bed.Admin.GetByteArrayAsync(new Uri($"api/experiments/{id}/updates?after={after}", UriKind.Relative), ct).ConfigureAwait(false);
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException && !ct.IsCancellationRequested)
        {
            return;
        }
        foreach (var (round, hash) in Hashes(bytes))
        {
            if (seen.TryGetValue(round, out var known) && known != hash)
                _redone++;
            seen[round] = hash;
        }
    }

    private static IEnumerable<(int Round, string Hash)> Hashes(byte[] updates) =>
        Wire.Deserialize<GlobalUpdate[]>(updates).Select(u => (u.Round, Convert.ToHexStringLower(SHA256.HashData(Wire.Serialize(u)))));

    private async Task<bool> WaitForProgressAsync(TimeSpan limit, CancellationToken ct, long? since = null)
    {
        long start = since ?? Interlocked.Read(ref _progress);
        return await WaitAsync(() => Task.FromResult(Interlocked.Read(ref _progress) > start), limit, ct).ConfigureAwait(false);
    }

    private static async Task<bool> WaitAsync(Func<Task<bool>> condition, TimeSpan limit, CancellationToken ct)
    {
        var until = Stopwatch.StartNew();
        while (until.Elapsed < limit)
        {
            if (await condition().ConfigureAwait(false))
                return true;
            await Task.Delay(100, ct).ConfigureAwait(false);
        }
        return false;
    }

    private static async Task<bool> AllCompletedAsync(Testbed bed, IReadOnlyList<ExperimentDescriptor> experiments, CancellationToken ct)
    {
        foreach (var d in experiments)
        {
            if (await bed.TryGetAsync($"api/experiments/{d.Id}", ct).ConfigureAwait(false) is not { } view || view.GetProperty("state").GetString() != "Completed")
                return false;
        }
        return true;
    }

    /// <summary>The final round log against what was observed, and every reported fingerprint against an independent replay.</summary>
    private async Task<(int Completed, int Abandoned, int Lost, int Redone, int Reports, int Mismatches)> VerifyAsync(Testbed bed,
        IReadOnlyList<ExperimentDescriptor> experiments, CancellationToken ct)
    {
        int completed = 0, abandoned = 0, lost = 0, redone = 0, reports = 0, mismatches = 0;
        foreach (var d in experiments)
        {
            var bytes = await bed.Admin.GetByteArrayAsync(new Uri($"api/experiments/{d.Id}/updates?after=0", UriKind.Relative), ct).ConfigureAwait(false);
            var final = Hashes(bytes).ToDictionary(h => h.Round, h => h.Hash);
            foreach (var (round, hash) in _observed[d.Id])
            {
                if (!final.TryGetValue(round, out var kept))
                    lost++;
                else if (kept != hash)
                    redone++;
            }
            var view = await bed.Admin.GetFromJsonAsync(d.Id, ct).ConfigureAwait(false);
            completed += final.Count;
            abandoned += view.GetProperty("roundLog").EnumerateArray().Count(r => r.GetProperty("state").GetString() == "Abandoned");

            // Independent replay: the package's initial parameters with every logged update applied in order.
            var algorithm = FederatedAlgorithms.Create(d, d.Blocks(bed.Package.Layout));
            var parameters = bed.Package.LoadParameters();
            var expected = new Dictionary<int, string>();
            foreach (var u in Wire.Deserialize<GlobalUpdate[]>(bytes))
            {
                algorithm.Apply(u, parameters);
                expected[u.Round] = ModelFingerprint.Compute(parameters);
            }
            foreach (var (round, fingerprint) in expected)
            {
                var detail = await bed.Admin.GetFromJsonAsync(d.Id, round, ct).ConfigureAwait(false);
                foreach (var f in detail.GetProperty("fingerprints").EnumerateArray())
                {
                    reports++;
                    if (f.GetProperty("fingerprint").GetString() != fingerprint)
                        mismatches++;
                }
            }
            string last = expected.Count == 0 ? ModelFingerprint.Compute(bed.Package.LoadParameters()) : expected[expected.Keys.Max()];
            foreach (var edge in _edges.Where(e => e.Experiment == d.Id && e.Process is { HasExited: true, ExitCode: 0 }))
            {
                var line = File.ReadLines(edge.Process!.LogPath).LastOrDefault(l => l.Contains("final fingerprint", StringComparison.Ordinal));
                if (line is null)
                    continue;
                reports++;
                if (line[(line.LastIndexOf(' ') + 1)..] != last)
                    mismatches++;
            }
        }
        return (completed, abandoned, lost, redone, reports, mismatches);
    }

    private static bool IntegrityOk(string databasePath)
    {
        using var connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = databasePath, Pooling = false }.ToString());
        connection.Open();
        using var command = connection.CreateCommand();
        command.CommandText = "PRAGMA integrity_check";
        return command.ExecuteScalar() as string == "ok";
    }
}

/// <summary>The REST views the harness reads.</summary>
internal static class TestbedViews
{
    public static async Task<JsonElement> GetFromJsonAsync(this HttpClient admin, string experimentId, CancellationToken ct) =>
        JsonDocument.Parse(await admin.GetStringAsync(new Uri($"api/experiments/{experimentId}", UriKind.Relative), ct).ConfigureAwait(false)).RootElement.Clone();

    public static async Task<JsonElement> GetFromJsonAsync(this HttpClient admin, string experimentId, int round, CancellationToken ct) =>
        JsonDocument.Parse(await admin.GetStringAsync(new Uri($"api/experiments/{experimentId}/rounds/{round}", UriKind.Relative), ct).ConfigureAwait(false)).RootElement.Clone();
}
