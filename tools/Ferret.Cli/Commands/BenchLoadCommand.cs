using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Ferret.Cli.Reliability;
using Spectre.Console;

namespace Ferret.Cli.Commands;

/// <summary><c>ferret bench load</c>: many lightweight clients through real connections; round latency and the coordinator's cost per client.</summary>
internal static class BenchLoadCommand
{
    public static Command Create()
    {
        var clients = new Option<int>("--clients") { Description = "Lightweight clients (SignalR over WebSockets, valid Ferret packets, no training).", DefaultValueFactory = _ => 1000 };
        var rounds = new Option<int>("--rounds") { Description = "Rounds to run.", DefaultValueFactory = _ => 5 };
        var json = new Option<bool>("--json") { Description = "Print one JSON object (progress goes to stderr)." };
        var command = new Command("load", "N lightweight clients on one experiment: round close latency p50/p99, packets per second at the door, coordinator CPU and memory per connection, the first resource to saturate (Linux).")
        {
            clients, rounds, json,
        };
        CommandAction.SetAsync(command, async (parse, ct) =>
        {
            int n = parse.GetValue(clients), r = parse.GetValue(rounds);
            if (!OperatingSystem.IsLinux())
                throw new NotSupportedException("bench load reads /proc and runs on Linux only.");
            if (n is < 1 or > 100_000)
                throw new ArgumentException($"--clients {n} is outside 1..100000.");
            if (r is < 1 or > 10_000)
                throw new ArgumentException($"--rounds {r} is outside 1..10000.");
            var report = await new LoadHarness(new LoadOptions(n, r), Console.Error.WriteLine).RunAsync(ct).ConfigureAwait(false);
            if (parse.GetValue(json))
            {
                parse.InvocationConfiguration.Output.WriteLine(JsonSerializer.Serialize(new
                {
                    clients = report.Clients,
                    rounds_completed = report.RoundsCompleted,
                    round_close_p50_ms = Math.Round(report.RoundCloseP50Ms),
                    round_close_p99_ms = Math.Round(report.RoundCloseP99Ms),
                    bytes_per_connection = Math.Round(report.BytesPerConnection),
                    packets_per_s = Math.Round(report.PacketsPerSecond),
                    packets_accepted = report.PacketsAccepted,
                    packets_rejected = report.PacketsRejected,
                    coordinator_cpu_percent = Math.Round(report.CoordinatorCpuPercent, 1),
                    harness_cpu_percent = Math.Round(report.HarnessCpuPercent, 1),
                    coordinator_rss_baseline_bytes = report.CoordinatorRssBaselineBytes,
                    coordinator_rss_joined_bytes = report.CoordinatorRssJoinedBytes,
                    coordinator_rss_peak_bytes = report.CoordinatorRssPeakBytes,
                    saturated = report.Saturated,
                    connect_seconds = Math.Round(report.ConnectSeconds, 1),
                    seconds = Math.Round(report.Seconds, 1),
                }));
            }
            else
            {
                var table = new Table().AddColumn("measure").AddColumn(new TableColumn("value").RightAligned());
                table.AddRow("clients", report.Clients.ToString("N0", CultureInfo.InvariantCulture));
                table.AddRow("rounds completed", report.RoundsCompleted.ToString(CultureInfo.InvariantCulture));
                table.AddRow("round close p50 / p99", $"{report.RoundCloseP50Ms:F0} ms / {report.RoundCloseP99Ms:F0} ms");
                table.AddRow("packets per second at the door", report.PacketsPerSecond.ToString("F0", CultureInfo.InvariantCulture));
                table.AddRow("packets accepted / rejected", $"{report.PacketsAccepted} / {report.PacketsRejected}");
                table.AddRow("coordinator memory per connection", $"{report.BytesPerConnection / 1024:F1} KiB");
                table.AddRow("coordinator RSS baseline / joined / peak", $"{report.CoordinatorRssBaselineBytes / 1048576.0:F0} / {report.CoordinatorRssJoinedBytes / 1048576.0:F0} / {report.CoordinatorRssPeakBytes / 1048576.0:F0} MiB");
                table.AddRow("CPU during rounds", $"coordinator {report.CoordinatorCpuPercent:F0} %, load generator {report.HarnessCpuPercent:F0} % of the machine");
                table.AddRow("first to saturate", report.Saturated);
                table.AddRow("enrol + connect, all", $"{report.ConnectSeconds:F1} s");
                AnsiConsole.Write(table);
            }
            return report.RoundsCompleted == r ? 0 : 1;
        });
        return command;
    }
}
