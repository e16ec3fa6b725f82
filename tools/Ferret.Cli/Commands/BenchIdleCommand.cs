using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Ferret.Cli.Demo;
using Ferret.Core.Protocol;
using Microsoft.AspNetCore.SignalR.Client;
using Microsoft.Extensions.DependencyInjection;
using Spectre.Console;

namespace Ferret.Cli.Commands;

/// <summary>
/// <c>ferret bench idle</c>: what many connected, idle edge clients cost the coordinator. Starts a
/// coordinator process, enrols N clients, connects each over WebSockets and joins an experiment that waits
/// for more clients than there are (so no round opens), then reads the coordinator's resident memory and
/// CPU time from /proc while they sit idle.
/// </summary>
internal static class BenchIdleCommand
{
    public static Command Create()
    {
        var artifacts = new Option<DirectoryInfo>("--artifacts") { Description = "Artifact package the experiment names (ferret export).", Required = true };
        var connections = new Option<int>("--connections") { Description = "Idle clients to connect.", DefaultValueFactory = _ => 1000 };
        var seconds = new Option<int>("--seconds") { Description = "Idle window measured.", DefaultValueFactory = _ => 30 };
        var json = new Option<bool>("--json") { Description = "Print one JSON object instead of a table." };
        var command = new Command("idle", "Coordinator memory and CPU with many idle edge-client connections (Linux).") { artifacts, connections, seconds, json };
        CommandAction.SetAsync(command, (parse, ct) => RunAsync(parse.GetRequiredValue(artifacts).FullName, parse.GetValue(connections), parse.GetValue(seconds),
            parse.GetValue(json), ct));
        return command;
    }

    private static async Task<int> RunAsync(string package, int count, int seconds, bool json, CancellationToken ct)
    {
        if (!OperatingSystem.IsLinux())
            throw new NotSupportedException("bench idle reads /proc and runs on Linux only.");
        if (count is < 1 or > 100_000)
            throw new ArgumentException($"--connections {count} is outside 1..100000.");
        if (seconds is < 1 or > 3600)
            throw new ArgumentException($"--seconds {seconds} is outside 1..3600.");
        if (!File.Exists(Path.Combine(package, "manifest.json")))
            throw new DirectoryNotFoundException($"'{package}' is not an artifact package (no manifest.json).");
        var work = Directory.CreateTempSubdirectory("ferret-bench-idle-").FullName;
        var hubs = new List<HubConnection>();
        try
        {
            const string adminKey = "bench-idle-admin";
            var (coordinator, url) = await CoordinatorProcess.StartAsync("coordinator", "http://127.0.0.1:0", adminKey, Path.Combine(work, "coordinator.db"),
                Path.GetDirectoryName(Path.GetFullPath(package))!, Path.Combine(work, "coordinator.log"),
                ["--Logging:LogLevel:Default", "Warning", "--Logging:LogLevel:Microsoft.Hosting.Lifetime", "Information"], ct).ConfigureAwait(false);
            using var _ = coordinator;
            using var admin = new HttpClient { BaseAddress = url };
            admin.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", adminKey);
            var created = await CoordinatorProcess.PostAsync(admin, "api/experiments", new
            {
                name = "idle",
                algorithm = "ferret",
                artifact = Path.GetFileName(Path.GetFullPath(package).TrimEnd(Path.DirectorySeparatorChar)),
                rounds = 1,
                fraction = 1.0,
                minClients = count + 1,
            }, ct).ConfigureAwait(false);
            string experiment = created.GetProperty("id").GetString()!;
            await Task.Delay(2000, ct).ConfigureAwait(false);
            var baseline = ProcessStats.Sample(coordinator.Id);

            var joinTimer = Stopwatch.StartNew();
            await AnsiConsole.Progress().StartAsync(async progress =>
            {
                var task = progress.AddTask($"connecting {count} clients", maxValue: count);
                using var gate = new SemaphoreSlim(16);
                await Task.WhenAll(Enumerable.Range(0, count).Select(async i =>
                {
                    await gate.WaitAsync(ct).ConfigureAwait(false);
                    try
                    {
                        var enrolment = await CoordinatorProcess.PostAsync(admin, "api/enrolments", new { label = "idle" }, ct).ConfigureAwait(false);
                        var client = await CoordinatorProcess.PostAsync(admin, "api/clients/enrol", new { enrolmentToken = enrolment.GetProperty("token").GetString(), name = $"idle-{i}" }, ct)
                            .ConfigureAwait(false);
                        string token = client.GetProperty("token").GetString()!;
                        var hub = new HubConnectionBuilder()
                            .WithUrl(new Uri(url, RoundsProtocol.Path), o => o.AccessTokenProvider = () => Task.FromResult<string?>(token))
                            .AddMessagePackProtocol()
                            .Build();
                        await hub.StartAsync(ct).ConfigureAwait(false);
                        await hub.InvokeAsync<JoinResult>(RoundsProtocol.Join, experiment, null, ct).ConfigureAwait(false);
                        lock (hubs)
                            hubs.Add(hub);
                        task.Increment(1);
                    }
                    finally
                    {
                        gate.Release();
                    }
                })).ConfigureAwait(false);
            }).ConfigureAwait(false);
            double joinSeconds = joinTimer.Elapsed.TotalSeconds;

            await Task.Delay(3000, ct).ConfigureAwait(false); // let start-up garbage settle
            var start = ProcessStats.Sample(coordinator.Id);
            await Task.Delay(TimeSpan.FromSeconds(seconds), ct).ConfigureAwait(false);
            var end = ProcessStats.Sample(coordinator.Id);
            double cpuPercent = 100.0 * (end.CpuSeconds - start.CpuSeconds) / seconds;
            double perConnection = (double)(end.RssBytes - baseline.RssBytes) / count;
            if (json)
            {
                Console.WriteLine(CliJson.Serialize(new
                {
                    connections = count,
                    idle_seconds = seconds,
                    rss_baseline_bytes = baseline.RssBytes,
                    rss_connected_bytes = end.RssBytes,
                    rss_per_connection_bytes = perConnection,
                    idle_cpu_percent = cpuPercent,
                    connect_and_join_seconds = joinSeconds,
                }));
            }
            else
            {
                var table = new Table().AddColumn("measure").AddColumn(new TableColumn("value").RightAligned());
                table.AddRow("idle connections (joined, WebSockets)", count.ToString("N0", CultureInfo.InvariantCulture));
                table.AddRow("coordinator RSS before", Mib(baseline.RssBytes));
                table.AddRow("coordinator RSS connected", Mib(end.RssBytes));
                table.AddRow("RSS per connection", (perConnection / 1024).ToString("F1", CultureInfo.InvariantCulture) + " KiB");
                table.AddRow($"coordinator CPU over {seconds} s idle", cpuPercent.ToString("F2", CultureInfo.InvariantCulture) + " % of one core");
                table.AddRow("enrol + connect + join, all", joinSeconds.ToString("F1", CultureInfo.InvariantCulture) + " s");
                AnsiConsole.Write(table);
            }
            return 0;
        }
        finally
        {
            foreach (var hub in hubs)
                await hub.DisposeAsync().ConfigureAwait(false);
            Directory.Delete(work, recursive: true);
        }
    }

    private static string Mib(long bytes) => (bytes / (1024.0 * 1024)).ToString("F1", CultureInfo.InvariantCulture) + " MiB";
}
