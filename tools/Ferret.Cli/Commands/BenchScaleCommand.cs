using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;
using System.Text.Json;
using Ferret.Cli.Demo;
using Ferret.Cli.ScaleOut;
using Ferret.Core.Algorithms;
using Ferret.Core.Packets;
using Ferret.Core.Parameters;
using Ferret.Onnx.Artifacts;
using Ferret.Onnx.Export;
using Spectre.Console;

namespace Ferret.Cli.Commands;

/// <summary>
/// <c>ferret bench scale</c>: several coordinator instances behind one PostgreSQL round log and one Redis
/// backplane, with many lightweight clients spread across them. Starts its own PostgreSQL and Redis unless
/// given connection strings, runs a Ferret experiment on tiny-gpt2 with every client in every round, and
/// reports rounds per minute, round close latency, memory per connection, CPU per component (where the
/// bottleneck is) and whether every client ended with the same model.
/// </summary>
internal static class BenchScaleCommand
{
    public static Command Create()
    {
        var coordinators = new Option<int>("--coordinators") { Description = "Coordinator instances (processes on loopback).", DefaultValueFactory = _ => 1 };
        var clients = new Option<int>("--clients") { Description = "Simulated clients, spread over the instances.", DefaultValueFactory = _ => 100 };
        var rounds = new Option<int>("--rounds") { Description = "Rounds; every client answers every round.", DefaultValueFactory = _ => 5 };
        var redis = new Option<string?>("--redis") { Description = "Redis to use (host:port); default: a throwaway redis-server." };
        var postgres = new Option<string?>("--postgres") { Description = "PostgreSQL database to use (Host=...;Database=...); default: a throwaway server." };
        var json = new Option<bool>("--json") { Description = "Print one JSON object instead of a table." };
        var command = new Command("scale", "Coordinator instances on PostgreSQL and Redis under many simulated clients (Linux).")
        {
            coordinators, clients, rounds, redis, postgres, json,
        };
        CommandAction.SetAsync(command, (parse, ct) => RunAsync(new Settings(parse.GetValue(coordinators), parse.GetValue(clients), parse.GetValue(rounds),
            parse.GetValue(redis), parse.GetValue(postgres), parse.GetValue(json)), ct));
        return command;
    }

    private sealed record Settings(int Coordinators, int Clients, int Rounds, string? Redis, string? Postgres, bool Json);

    private static async Task<int> RunAsync(Settings s, CancellationToken ct)
    {
        if (!OperatingSystem.IsLinux())
            throw new NotSupportedException("bench scale reads /proc and runs on Linux only.");
        if (s.Coordinators is < 1 or > 16)
            throw new ArgumentException($"--coordinators {s.Coordinators} is outside 1..16.");
        if (s.Clients is < 1 or > 100_000)
            throw new ArgumentException($"--clients {s.Clients} is outside 1..100000.");
        if (s.Rounds is < 1 or > 1000)
            throw new ArgumentException($"--rounds {s.Rounds} is outside 1..1000.");
        if (s.Postgres is { } pg && !pg.Contains("Host=", StringComparison.OrdinalIgnoreCase))
            throw new ArgumentException($"--postgres '{pg}' is not a PostgreSQL connection string (Host=...;Database=...;Username=...).");
        void Say(string line)
        {
            if (!s.Json)
                AnsiConsole.MarkupLine(Markup.Escape(line));
        }

        var work = Directory.CreateTempSubdirectory("ferret-bench-scale-").FullName;
        var processes = new List<ChildProcess>();
        LocalPostgres? ownPostgres = null;
        LocalRedis? ownRedis = null;
        SimulatedClients? simulated = null;
        var admins = new List<HttpClient>();
        bool keepLogs = true; // until the run has come out clean: a failed one leaves its coordinators' logs to read
        try
        {
            var package = ModelExporter.Export(new ModelSource.FromPreset("tiny-gpt2", 1), Path.Combine(work, "artifacts", "tiny-gpt2"), overwrite: false, cancellationToken: ct);
            string roundLog = s.Postgres ?? (ownPostgres = LocalPostgres.Start()).CreateDatabase("ferret_bench");
            string redis = s.Redis ?? (ownRedis = LocalRedis.Start()).ConnectionString;
            Say($"round log: {(ownPostgres is null ? "the given PostgreSQL" : $"PostgreSQL on 127.0.0.1:{ownPostgres.Port} (throwaway)")}; backplane: {(ownRedis is null ? "the given Redis" : $"Redis on {redis} (throwaway)")}");

            const string adminKey = "bench-scale-admin";
            var started = await Task.WhenAll(Enumerable.Range(0, s.Coordinators).Select(i => CoordinatorProcess.StartAsync($"coordinator-{i}", "http://127.0.0.1:0", adminKey,
                Path.Combine(work, $"unused-{i}.db"), Path.Combine(work, "artifacts"), Path.Combine(work, $"coordinator-{i}.log"),
                ["--Ferret:RoundLog", roundLog, "--Ferret:Redis", redis, "--Ferret:InstanceId", $"coordinator-{i}",
                    "--Logging:LogLevel:Default", "Warning", "--Logging:LogLevel:Microsoft.Hosting.Lifetime", "Information"], ct))).ConfigureAwait(false);
            foreach (var (process, url) in started)
            {
                processes.Add(process);
                var admin = new HttpClient { BaseAddress = url, Timeout = TimeSpan.FromMinutes(5) };
                admin.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", adminKey);
                admins.Add(admin);
            }
            Say($"{s.Coordinators} coordinator instance(s): {string.Join(", ", started.Select(p => p.Url.ToString()))}");

            var created = await CoordinatorProcess.PostAsync(admins[0], "api/experiments", new
            {
                name = "bench-scale",
                algorithm = "ferret",
                artifact = "tiny-gpt2",
                rounds = s.Rounds,
                fraction = 1.0,
                minClients = s.Clients,
                roundDeadlineSeconds = 600,
                experimentSeed = 1UL,
            }, ct).ConfigureAwait(false);
            string id = created.GetProperty("id").GetString()!;
            var descriptor = Wire.Deserialize<ExperimentDescriptor>(await admins[0].GetByteArrayAsync($"api/experiments/{id}/descriptor", ct).ConfigureAwait(false));
            await Task.Delay(2000, ct).ConfigureAwait(false); // start-up settles before the baseline
            long baselineRss = processes.Sum(p => ProcessStats.Sample(p.Id).RssBytes);

            var connectTimer = Stopwatch.StartNew();
            if (s.Json)
            {
                simulated = await SimulatedClients.ConnectAsync(admins, descriptor, s.Clients, () => { }, ct).ConfigureAwait(false);
            }
            else
            {
                await AnsiConsole.Progress().StartAsync(async progress =>
                {
                    var task = progress.AddTask($"enrolling, connecting and joining {s.Clients:N0} clients", maxValue: s.Clients);
                    simulated = await SimulatedClients.ConnectAsync(admins, descriptor, s.Clients, () => task.Increment(1), ct).ConfigureAwait(false);
                }).ConfigureAwait(false);
            }
            double connectSeconds = connectTimer.Elapsed.TotalSeconds;
            var clients = simulated!;
            long connectedRss = processes.Sum(p => ProcessStats.Sample(p.Id).RssBytes);

            // CPU over the rounds, per component; the first round opens as soon as the last client has joined.
            var cpuBefore = CpuSeconds(processes, ownPostgres, ownRedis);
            var machineBefore = ProcessStats.MachineCpu();
            var wall = Stopwatch.StartNew();
            int completed = 0;
            for (int r = 1; r <= s.Rounds; r++)
            {
                var closed = clients.RoundClosed(r).WaitAsync(TimeSpan.FromMinutes(15), ct);
                await (await Task.WhenAny(closed, clients.ConnectionLost).ConfigureAwait(false)).ConfigureAwait(false);
                if (clients.Completed(r))
                    completed++;
                var lat = clients.CloseLatenciesMs(r).Order().ToList();
                Say(string.Create(CultureInfo.InvariantCulture,
                    $"round {r}: {(clients.Completed(r) ? "completed" : "abandoned")} in {clients.Duration(r).TotalSeconds:F2} s, update reached clients {Percentile(lat, 50):F0} ms (p50) / {Percentile(lat, 99):F0} ms (p99) after the last packet was sent"));
            }
            double roundsSeconds = wall.Elapsed.TotalSeconds;
            var cpuAfter = CpuSeconds(processes, ownPostgres, ownRedis);
            var machineAfter = ProcessStats.MachineCpu();
            double machineBusy = machineAfter.Total > machineBefore.Total
                ? (machineAfter.Busy - machineBefore.Busy) / (machineAfter.Total - machineBefore.Total) : double.NaN;
            var (firstOpened, _) = clients.Span(1);
            var (_, lastClosed) = clients.Span(s.Rounds);
            double activeSeconds = Stopwatch.GetElapsedTime(firstOpened, lastClosed).TotalSeconds;

            var closes = Enumerable.Range(1, s.Rounds).SelectMany(clients.CloseLatenciesMs).Order().ToList();
            var durations = Enumerable.Range(1, s.Rounds).Select(r => clients.Duration(r).TotalMilliseconds).Order().ToList();
            var (agree, fingerprint) = await AgreementAsync(clients, admins, package, id, ct).ConfigureAwait(false);
            var cpu = cpuAfter.ToDictionary(kv => kv.Key, kv => kv.Value - cpuBefore.GetValueOrDefault(kv.Key));
            string bottleneck = Bottleneck(cpu, roundsSeconds, machineBusy);
            double bytesPerConnection = (double)(connectedRss - baselineRss) / s.Clients;
            double load = ProcessStats.LoadAverage();

            if (s.Json)
            {
                Console.WriteLine(JsonSerializer.Serialize(new Dictionary<string, object?>
                {
                    ["coordinators"] = s.Coordinators,
                    ["clients"] = s.Clients,
                    ["rounds"] = s.Rounds,
                    ["rounds_completed"] = completed,
                    ["rounds_per_minute"] = 60.0 * s.Rounds / activeSeconds,
                    ["round_close_p50_ms"] = Percentile(closes, 50),
                    ["round_close_p99_ms"] = Percentile(closes, 99),
                    ["round_duration_p50_ms"] = Percentile(durations, 50),
                    ["round_duration_max_ms"] = durations[^1],
                    ["bytes_per_connection"] = bytesPerConnection,
                    ["connect_seconds"] = connectSeconds,
                    ["fingerprints_agree"] = agree,
                    ["model_fingerprint"] = fingerprint,
                    ["packets_rejected"] = clients.Rejected,
                    ["rejections"] = clients.Refusals,
                    ["cpu_seconds"] = cpu,
                    ["bottleneck"] = bottleneck,
                    ["machine_cpu_busy_percent"] = 100 * machineBusy,
                    ["load_average_1m"] = load,
                }));
            }
            else
            {
                var table = new Table().AddColumn("measure").AddColumn(new TableColumn("value").RightAligned());
                table.AddRow("coordinator instances / clients", $"{s.Coordinators} / {s.Clients:N0}");
                table.AddRow("rounds completed", $"{completed} of {s.Rounds}");
                table.AddRow("rounds per minute", F(60.0 * s.Rounds / activeSeconds, 1));
                table.AddRow("round close latency p50 / p99", $"{F(Percentile(closes, 50), 0)} / {F(Percentile(closes, 99), 0)} ms");
                table.AddRow("round duration p50 / max", $"{F(Percentile(durations, 50) / 1000, 2)} / {F(durations[^1] / 1000, 2)} s");
                table.AddRow("coordinator memory per connection", $"{F(bytesPerConnection / 1024, 1)} KiB");
                table.AddRow("enrol + connect + join, all", $"{F(connectSeconds, 1)} s");
                table.AddRow("every client holds the log's model", agree ? $"yes ({fingerprint[..16]}...)" : "NO");
                table.AddRow("packets rejected", clients.Rejected.ToString(CultureInfo.InvariantCulture));
                foreach (var (reason, n) in clients.Refusals)
                    table.AddRow($"  {Markup.Escape(reason)}", n.ToString(CultureInfo.InvariantCulture));
                foreach (var (component, seconds) in cpu.OrderByDescending(kv => kv.Value))
                    table.AddRow($"CPU, {component}", $"{F(100 * seconds / roundsSeconds, 0)} % of one core");
                table.AddRow("bottleneck", bottleneck);
                table.AddRow("machine CPU busy (all processes)", F(100 * machineBusy, 0) + " %");
                table.AddRow("load average (1 min)", F(load, 2));
                AnsiConsole.Write(table);
            }
            keepLogs = !(agree && completed == s.Rounds && clients.Rejected == 0);
            return keepLogs ? 1 : 0;
        }
        finally
        {
            if (simulated is not null)
                await simulated.DisposeAsync().ConfigureAwait(false);
            foreach (var admin in admins)
                admin.Dispose();
            foreach (var p in processes)
                p.Dispose();
            ownRedis?.Dispose();
            ownPostgres?.Dispose();
            if (keepLogs)
            {
                if (Directory.Exists(Path.Combine(work, "artifacts")))
                    Directory.Delete(Path.Combine(work, "artifacts"), recursive: true);
                Console.Error.WriteLine($"ferret: the coordinators' logs are kept in {work}");
            }
            else
            {
                try
                {
                    Directory.Delete(work, recursive: true);
                }
                catch (IOException)
                {
                    // a process may hold a file for a moment; the temp cleaner gets it
                }
            }
        }
    }

    /// <summary>
    /// Every client heard the same updates, every instance's log holds those, and replaying them onto the
    /// initial parameters gives the model fingerprint everyone holds.
    /// </summary>
    private static async Task<(bool Agree, string Fingerprint)> AgreementAsync(SimulatedClients clients, List<HttpClient> admins, ArtifactPackage package,
        string id, CancellationToken ct)
    {
        var chains = clients.DistinctChains();
        bool agree = chains.Count == 1;
        foreach (var admin in admins)
        {
            var logged = Wire.Deserialize<GlobalUpdate[]>(await admin.GetByteArrayAsync($"api/experiments/{id}/updates?after=0", ct).ConfigureAwait(false));
            agree &= logged.Select(SimulatedClients.Digest).SequenceEqual(chains[0]);
        }
        var descriptor = Wire.Deserialize<ExperimentDescriptor>(await admins[0].GetByteArrayAsync($"api/experiments/{id}/descriptor", ct).ConfigureAwait(false));
        var algorithm = FederatedAlgorithms.Create(descriptor, descriptor.Blocks(package.Layout));
        var parameters = package.LoadParameters();
        foreach (var u in clients.UpdatesOfFirstClient())
            algorithm.Apply(u, parameters);
        return (agree, ModelFingerprint.Compute(parameters));
    }

    /// <summary>CPU seconds so far of each component on this machine.</summary>
    private static Dictionary<string, double> CpuSeconds(List<ChildProcess> coordinators, LocalPostgres? postgres, LocalRedis? redis)
    {
        var cpu = new Dictionary<string, double>
        {
            ["coordinators"] = coordinators.Sum(p => ProcessStats.Sample(p.Id).CpuSeconds),
            ["simulated clients (this process)"] = Process.GetCurrentProcess().TotalProcessorTime.TotalSeconds,
        };
        if (postgres is not null)
            cpu["postgresql"] = postgres.ProcessIds().Sum(pid => ProcessStats.Sample(pid).CpuSeconds);
        if (redis is not null)
            cpu["redis"] = ProcessStats.Sample(redis.ProcessId).CpuSeconds;
        return cpu;
    }

    /// <summary>The component that used most CPU, and whether the machine's cores were the limit (this benchmark's processes or others').</summary>
    private static string Bottleneck(Dictionary<string, double> cpu, double seconds, double machineBusy)
    {
        double ours = cpu.Values.Sum();
        var (top, used) = cpu.MaxBy(kv => kv.Value);
        double share = ours > 0 ? 100 * used / ours : 0;
        double oursOfCores = 100 * ours / (Environment.ProcessorCount * seconds);
        if (oursOfCores >= 85)
            return string.Create(CultureInfo.InvariantCulture, $"CPU: this benchmark kept the {Environment.ProcessorCount} cores busy; {top} used {share:F0} % of its CPU time");
        if (machineBusy >= 0.85)
            return string.Create(CultureInfo.InvariantCulture, $"CPU, shared: the machine was {100 * machineBusy:F0} % busy, this benchmark {oursOfCores:F0} % ({top} most, {share:F0} %)");
        return string.Create(CultureInfo.InvariantCulture, $"not CPU ({oursOfCores:F0} % of the cores): waits on database commits and Redis round trips; {top} used most CPU ({share:F0} %)");
    }

    private static double Percentile(List<double> sorted, double p) =>
        sorted.Count == 0 ? double.NaN : sorted[Math.Clamp((int)Math.Ceiling(p / 100 * sorted.Count) - 1, 0, sorted.Count - 1)];

    private static string F(double v, int digits) => v.ToString("F" + digits.ToString(CultureInfo.InvariantCulture), CultureInfo.InvariantCulture);
}
