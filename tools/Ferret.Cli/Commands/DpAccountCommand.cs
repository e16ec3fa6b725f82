using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Ferret.Core.Privacy;
using Spectre.Console;

namespace Ferret.Cli.Commands;

/// <summary>
/// <c>ferret dp-account</c>: the (epsilon, delta) an experiment spends, from the RDP accountant of the sampled
/// Gaussian mechanism, or the noise multiplier a target epsilon needs, so a user can plan before running.
/// </summary>
internal static class DpAccountCommand
{
    public static Command Create()
    {
        var q = new Option<double>("--sampling-rate") { Description = "Fraction q of clients sampled per round (Poisson rate).", Required = true };
        var z = new Option<double?>("--noise-multiplier") { Description = "Noise multiplier z (noise std / clip norm); omit and give --epsilon to solve for it." };
        var target = new Option<double?>("--epsilon") { Description = "Target epsilon: print the smallest noise multiplier that reaches it." };
        var rounds = new Option<int>("--rounds") { Description = "Rounds R.", Required = true };
        var delta = new Option<double>("--delta") { Description = "delta of the (epsilon, delta) statement.", DefaultValueFactory = _ => 1e-5 };
        var json = new Option<bool>("--json") { Description = "Print one JSON object." };
        var command = new Command("dp-account", "Privacy spent by R rounds of the sampled Gaussian mechanism (RDP accountant), or the noise a target epsilon needs.")
        {
            q, z, target, rounds, delta, json,
        };
        CommandAction.Set(command, parse =>
        {
            double rate = parse.GetValue(q), d = parse.GetValue(delta);
            int r = parse.GetValue(rounds);
            if (!(rate is > 0 and <= 1))
                throw new ArgumentException($"--sampling-rate {Text(rate)} is outside (0, 1].");
            if (r < 1)
                throw new ArgumentException($"--rounds {r} must be at least 1.");
            if (!(d is > 0 and < 1))
                throw new ArgumentException($"--delta {Text(d)} is outside (0, 1).");
            var noise = parse.GetValue(z);
            var goal = parse.GetValue(target);
            if (noise is null == goal is null)
                throw new ArgumentException("Give exactly one of --noise-multiplier (to get epsilon) and --epsilon (to get the noise multiplier).");
            if (noise is { } given && !(given > 0 && double.IsFinite(given)))
                throw new ArgumentException($"--noise-multiplier {Text(given)} must be positive.");
            if (goal is { } g && !(g > 0 && double.IsFinite(g)))
                throw new ArgumentException($"--epsilon {Text(g)} must be positive.");
            double multiplier = noise ?? RdpAccountant.NoiseMultiplierFor(goal!.Value, rate, r, d);
            var (epsilon, order) = RdpAccountant.Epsilon(rate, multiplier, r, d);
            var output = parse.InvocationConfiguration.Output;
            if (parse.GetValue(json))
            {
                output.WriteLine(JsonSerializer.Serialize(new
                {
                    sampling_rate = rate,
                    noise_multiplier = multiplier,
                    rounds = r,
                    delta = d,
                    epsilon,
                    rdp_order = order,
                    target_epsilon = goal,
                }));
                return 0;
            }
            if (goal is not null)
                AnsiConsole.MarkupLine(string.Create(CultureInfo.InvariantCulture, $"epsilon {goal} needs noise multiplier [bold]{multiplier:F3}[/]"));
            var table = new Table().AddColumn("rounds").AddColumn(new TableColumn("epsilon").RightAligned()).AddColumn(new TableColumn("best RDP order").RightAligned());
            foreach (int at in new[] { r / 4, r / 2, 3 * r / 4, r }.Where(x => x >= 1).Distinct())
            {
                var (e, o) = RdpAccountant.Epsilon(rate, multiplier, at, d);
                table.AddRow(at.ToString(CultureInfo.InvariantCulture), e.ToString("F3", CultureInfo.InvariantCulture), o.ToString(CultureInfo.InvariantCulture));
            }
            AnsiConsole.Write(table);
            output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"epsilon = {epsilon:F3} at delta = {d:G3} after {r} rounds (q = {rate:G4}, z = {multiplier:G4}; sampled Gaussian, RDP orders 2-256)"));
            return 0;
        });
        return command;
    }

    private static string Text(double v) => v.ToString(CultureInfo.InvariantCulture);
}
