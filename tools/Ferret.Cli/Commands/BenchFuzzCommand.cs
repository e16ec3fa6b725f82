using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Ferret.Cli.Reliability;
using Spectre.Console;

namespace Ferret.Cli.Commands;

/// <summary><c>ferret bench fuzz</c>: mutated packets, hub frames and HTTP bodies against running experiments.</summary>
internal static class BenchFuzzCommand
{
    public static Command Create()
    {
        var packets = new Option<int>("--packets") { Description = "Mutated packets to send.", DefaultValueFactory = _ => 100_000 };
        var seed = new Option<int>("--seed") { Description = "Seed of the mutations.", DefaultValueFactory = _ => 1 };
        var json = new Option<bool>("--json") { Description = "Print one JSON object (progress goes to stderr)." };
        var command = new Command("fuzz", "Mutated packets of every algorithm, malformed hub frames and HTTP bodies through real connections to running experiments; then the rounds must finish: crashes, invalid packets accepted, connections dropped, coordinator memory (Linux).")
        {
            packets, seed, json,
        };
        CommandAction.SetAsync(command, async (parse, ct) =>
        {
            int n = parse.GetValue(packets);
            if (!OperatingSystem.IsLinux())
                throw new NotSupportedException("bench fuzz reads /proc and runs on Linux only.");
            if (n is < 10 or > 100_000_000)
                throw new ArgumentException($"--packets {n} is outside 10..100000000.");
            var report = await new FuzzHarness(new FuzzOptions(n, parse.GetValue(seed)), Console.Error.WriteLine).RunAsync(ct).ConfigureAwait(false);
            if (parse.GetValue(json))
            {
                parse.InvocationConfiguration.Output.WriteLine(JsonSerializer.Serialize(new
                {
                    packets = report.Packets,
                    crashes = report.Crashes,
                    invalid_accepted = report.InvalidAccepted,
                    rounds_completed_after = report.RoundsCompletedAfter,
                    rss_growth_bytes = report.RssGrowthBytes,
                    valid_accepted = report.ValidAccepted,
                    valid_rejected = report.ValidRejected,
                    sender_drops = report.SenderDrops,
                    other_drops = report.OtherDrops,
                    raw_frames = report.RawFrames,
                    raw_connections_closed = report.RawConnectionsClosed,
                    http_bodies = report.HttpBodies,
                    http_5xx = report.Http5xx,
                    rejection_rows = report.RejectionRows,
                    by_kind = report.ByKind,
                    examples = report.Examples,
                    packets_per_s = Math.Round(report.PacketsPerSecond),
                    seconds = Math.Round(report.Seconds, 1),
                }));
            }
            else
            {
                var table = new Table().AddColumn("measure").AddColumn(new TableColumn("value").RightAligned());
                table.AddRow("packets sent (mutated)", $"{report.Packets:N0} at {report.PacketsPerSecond:F0}/s");
                table.AddRow("crashes (server errors, 5xx, exits)", report.Crashes.ToString(CultureInfo.InvariantCulture));
                table.AddRow("invalid packets accepted", report.InvalidAccepted.ToString(CultureInfo.InvariantCulture));
                table.AddRow("valid by the oracle: accepted / refused", $"{report.ValidAccepted} / {report.ValidRejected}");
                table.AddRow("connections dropped: sender / others", $"{report.SenderDrops} / {report.OtherDrops}");
                table.AddRow("raw hub frames (connections closed)", $"{report.RawFrames} ({report.RawConnectionsClosed})");
                table.AddRow("HTTP bodies (5xx)", $"{report.HttpBodies} ({report.Http5xx})");
                table.AddRow("rejection rows written", report.RejectionRows.ToString("N0", CultureInfo.InvariantCulture));
                table.AddRow("rounds completed afterwards", report.RoundsCompletedAfter.ToString(CultureInfo.InvariantCulture));
                table.AddRow("coordinator RSS growth", $"{report.RssGrowthBytes / 1048576.0:F1} MiB");
                AnsiConsole.Write(table);
                foreach (var e in report.Examples)
                    AnsiConsole.MarkupLine(Markup.Escape(e));
            }
            return report.Crashes == 0 && report.InvalidAccepted == 0 && report.RoundsCompletedAfter == 8 && report.OtherDrops == 0 ? 0 : 1;
        });
        return command;
    }
}
