using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Ferret.Cli.Reliability;
using Spectre.Console;

namespace Ferret.Cli.Commands;

/// <summary><c>ferret bench chaos</c>: kill the coordinator and clients at random and at the hardest moments; count what was lost.</summary>
internal static class BenchChaosCommand
{
    public static Command Create()
    {
        var kills = new Option<int>("--kills") { Description = "Coordinator kills (SIGKILL) during the run.", DefaultValueFactory = _ => 50 };
        var clients = new Option<int>("--clients") { Description = "Edge-client processes (half on a Ferret experiment, half on a FedAvg one).", DefaultValueFactory = _ => 4 };
        var rounds = new Option<int?>("--rounds") { Description = "Rounds per experiment (default: 2 x kills + 4)." };
        var seed = new Option<int>("--seed") { Description = "Seed of the kill schedule.", DefaultValueFactory = _ => 1 };
        var json = new Option<bool>("--json") { Description = "Print one JSON object (progress goes to stderr)." };
        var keep = new Option<bool>("--keep") { Description = "Keep the scratch folder (round log, every process's log)." };
        var command = new Command("chaos", "Coordinator and edge clients on loopback, the coordinator killed N times (inside the aggregation transaction, between persisting and broadcasting, during downloads and streamed uploads, at random) and restarted: rounds lost or redone, fingerprints against a replay, database integrity, recovery time.")
        {
            kills, clients, rounds, seed, json, keep,
        };
        CommandAction.SetAsync(command, async (parse, ct) =>
        {
            int k = parse.GetValue(kills), c = parse.GetValue(clients);
            int r = parse.GetValue(rounds) ?? (2 * k) + 4;
            if (k is < 0 or > 10_000)
                throw new ArgumentException($"--kills {k} is outside 0..10000.");
            if (c is < 1 or > 64)
                throw new ArgumentException($"--clients {c} is outside 1..64.");
            if (r is < 1 or > 100_000)
                throw new ArgumentException($"--rounds {r} is outside 1..100000.");
            var report = await new ChaosHarness(new ChaosOptions(k, c, r, parse.GetValue(seed), parse.GetValue(keep)), Console.Error.WriteLine).RunAsync(ct).ConfigureAwait(false);
            var output = parse.InvocationConfiguration.Output;
            if (parse.GetValue(json))
            {
                output.WriteLine(JsonSerializer.Serialize(new
                {
                    kills = report.Kills,
                    rounds_completed = report.RoundsCompleted,
                    rounds_lost = report.RoundsLost,
                    rounds_redone = report.RoundsRedone,
                    fingerprints_agree = report.FingerprintsAgree,
                    integrity_ok = report.IntegrityOk,
                    recovery_p99_ms = Math.Round(report.RecoveryP99Ms),
                    recovery_p50_ms = Math.Round(report.RecoveryP50Ms),
                    kills_by_moment = report.KillsByMoment,
                    client_kills = report.ClientKills,
                    fingerprint_reports = report.FingerprintReports,
                    fingerprint_mismatches = report.FingerprintMismatches,
                    rounds_abandoned = report.RoundsAbandoned,
                    experiments_completed = report.ExperimentsCompleted,
                    seconds = Math.Round(report.Seconds, 1),
                }));
            }
            else
            {
                var table = new Table().AddColumn("measure").AddColumn(new TableColumn("value").RightAligned());
                table.AddRow("coordinator kills", $"{report.Kills} ({string.Join(", ", report.KillsByMoment.Select(m => $"{m.Key} {m.Value}"))})");
                table.AddRow("client kills", report.ClientKills.ToString(CultureInfo.InvariantCulture));
                table.AddRow("rounds completed / abandoned", $"{report.RoundsCompleted} / {report.RoundsAbandoned}");
                table.AddRow("rounds lost / redone", $"{report.RoundsLost} / {report.RoundsRedone}");
                table.AddRow("fingerprints agreeing with a replay", $"{report.FingerprintReports - report.FingerprintMismatches} of {report.FingerprintReports}");
                table.AddRow("PRAGMA integrity_check", report.IntegrityOk ? "ok" : "FAILED");
                table.AddRow("recovery p50 / p99", $"{report.RecoveryP50Ms / 1000:F1} s / {report.RecoveryP99Ms / 1000:F1} s");
                table.AddRow("wall time", $"{report.Seconds:F0} s");
                AnsiConsole.Write(table);
            }
            bool held = report.RoundsLost == 0 && report.RoundsRedone == 0 && report.FingerprintsAgree && report.IntegrityOk && report.ExperimentsCompleted;
            return held ? 0 : 1;
        });
        return command;
    }
}
