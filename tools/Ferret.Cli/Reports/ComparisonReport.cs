using System.Globalization;
using System.Text;
using Ferret.Training.Simulation;

namespace Ferret.Cli.Reports;

/// <summary>What the comparison plot puts on its x-axis.</summary>
internal enum PlotAxis
{
    /// <summary>Rounds.</summary>
    Rounds,

    /// <summary>Client compute, summed over every client, in seconds.</summary>
    Compute,

    /// <summary>Bytes up and down, summed over every client (log scale: the algorithms differ by orders of magnitude).</summary>
    Bytes,
}

/// <summary>The side-by-side view of simulation runs: a Markdown table and a PNG of a held-out score against rounds, compute or bytes.</summary>
internal static class ComparisonReport
{
    public static string Markdown(IReadOnlyList<SimulationResult> results)
    {
        ArgumentNullException.ThrowIfNull(results);
        var sb = new StringBuilder();
        sb.AppendLine("| run | rounds | eval loss (start -> end) | Rouge-L (start -> end) | exact match (start -> end) | wall time | client compute / round | coordinator / round | forward + backward passes / client / round | upload / client / round | download / client / round | epsilon |");
        sb.AppendLine("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
        foreach (var r in results)
        {
            var first = r.Rounds[0];
            var last = r.Rounds[^1];
            var trained = r.Rounds.Skip(1).ToList();
            sb.AppendLine(string.Create(CultureInfo.InvariantCulture,
                $"| {r.Label} | {trained.Count} | {first.EvalLoss:F3} -> {last.EvalLoss:F3} | {first.RougeL:F3} -> {last.RougeL:F3} | {first.ExactMatch:F3} -> {last.ExactMatch:F3} | {trained.Sum(x => x.WallSeconds):F1} s | {trained.Average(x => x.ClientComputeSeconds):F2} s | {trained.Average(x => x.CoordinatorSeconds):F3} s | {trained.Average(x => x.ForwardPassesPerClient):F0} + {trained.Average(x => x.BackwardPassesPerClient):F0} | {Bytes(trained.Average(x => x.BytesUpPerClient))} | {Bytes(trained.Average(x => x.BytesDownPerClient))} | {(last.Epsilon is { } eps ? eps.ToString("F2", CultureInfo.InvariantCulture) : "-")} |"));
        }
        return sb.ToString();
    }

    /// <summary>
    /// Cost to target: for each run, the rounds, client compute, passes and bytes (all clients together) it
    /// spent until it first met the target, or "not reached"; the last columns relate each run to the first.
    /// </summary>
    public static string CostMarkdown(IReadOnlyList<SimulationResult> results, Target target)
    {
        ArgumentNullException.ThrowIfNull(results);
        ArgumentNullException.ThrowIfNull(target);
        var costs = results.Select(r => TargetCost.Measure(r, target)).ToList();
        var anchor = costs[0];
        var sb = new StringBuilder();
        sb.AppendLine(CultureInfo.InvariantCulture, $"Cost to target ({target.Describe()}), summed over all clients:");
        sb.AppendLine();
        sb.AppendLine(CultureInfo.InvariantCulture, $"| run | rounds | client compute | forward + backward passes | bytes up | bytes down | rounds / {anchor.Algorithm}'s | compute / {anchor.Algorithm}'s | bytes up / {anchor.Algorithm}'s |");
        sb.AppendLine("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
        foreach (var c in costs)
        {
            if (!c.Reached)
            {
                sb.AppendLine(CultureInfo.InvariantCulture, $"| {c.Algorithm} | not reached in {c.Rounds} | ({c.ClientComputeSeconds:F1} s) | ({c.ForwardPasses:F0} + {c.BackwardPasses:F0}) | ({Bytes(c.BytesUp)}) | ({Bytes(c.BytesDown)}) | - | - | - |");
                continue;
            }
            bool related = anchor.Reached;
            sb.AppendLine(string.Create(CultureInfo.InvariantCulture,
                $"| {c.Algorithm} | {c.Rounds} | {c.ClientComputeSeconds:F1} s | {c.ForwardPasses:F0} + {c.BackwardPasses:F0} | {Bytes(c.BytesUp)} | {Bytes(c.BytesDown)} | {(related ? Ratio(c.Rounds, anchor.Rounds) : "-")} | {(related ? Ratio(c.ClientComputeSeconds, anchor.ClientComputeSeconds) : "-")} | {(related ? Ratio(c.BytesUp, anchor.BytesUp) : "-")} |"));
        }
        return sb.ToString();
    }

    private static string Ratio(double value, double anchor) =>
        anchor > 0 ? string.Create(CultureInfo.InvariantCulture, $"{value / anchor:0.##}x") : value == 0 ? "1x" : "-";

    public static string Bytes(double bytes) => bytes switch
    {
        < 1024 => string.Create(CultureInfo.InvariantCulture, $"{bytes:F0} B"),
        < 1024 * 1024 => string.Create(CultureInfo.InvariantCulture, $"{bytes / 1024:F1} KiB"),
        < 1024L * 1024 * 1024 => string.Create(CultureInfo.InvariantCulture, $"{bytes / (1024 * 1024):F1} MiB"),
        _ => string.Create(CultureInfo.InvariantCulture, $"{bytes / (1024.0 * 1024 * 1024):F2} GiB"),
    };

    /// <summary>The setup a comparison ran on, for the plot's subtitle.</summary>
    public static string Subtitle(Onnx.Artifacts.ArtifactPackage package, int train, int test, SimulationOptions options)
    {
        ArgumentNullException.ThrowIfNull(package);
        ArgumentNullException.ThrowIfNull(options);
        var model = package.Manifest.Preset ?? package.Manifest.ModelFamily;
        return string.Create(CultureInfo.InvariantCulture,
            $"{model} ({package.Manifest.ParameterCount / 1e6:F2} M parameters), {train:N0} train / {test:N0} test examples, {options.Clients} clients, {options.Fraction:P0} per round, {options.Partition.ToString().ToLowerInvariant()} split, seed {options.Seed}");
    }

    /// <summary>
    /// The held-out score the target is set on (eval loss unless the target is a metric) against rounds,
    /// cumulative client compute or cumulative bytes, one line per run, with the target drawn across; the legend
    /// beside the plot (never over a curve), the setup as subtitle.
    /// </summary>
    public static void Plot(IReadOnlyList<SimulationResult> results, string path, PlotAxis axis = PlotAxis.Rounds, Target? target = null, string? subtitle = null)
    {
        ArgumentNullException.ThrowIfNull(results);
        var measure = target ?? new Target(TargetMeasure.EvalLoss, double.NaN);
        var plot = new ScottPlot.Plot();
        foreach (var r in results)
        {
            var totals = TargetCost.Cumulative(r);
            var points = r.Rounds.Select((round, i) => (X: axis switch
            {
                PlotAxis.Compute => totals[i].ClientComputeSeconds,
                PlotAxis.Bytes => totals[i].BytesUp + totals[i].BytesDown,
                _ => round.Round,
            }, Y: measure.Of(round)))
                // A log axis has no place for round 0's zero bytes.
                .Where(p => axis != PlotAxis.Bytes || p.X > 0)
                .ToList();
            var xs = points.Select(p => axis == PlotAxis.Bytes ? Math.Log10(p.X) : p.X).ToArray();
            var line = plot.Add.Scatter(xs, points.Select(p => p.Y).ToArray());
            line.LegendText = r.Label;
        }
        if (target is not null && double.IsFinite(target.Value))
        {
            var rule = plot.Add.HorizontalLine(target.Value);
            rule.LinePattern = ScottPlot.LinePattern.Dashed;
            rule.LegendText = "target";
        }
        if (axis == PlotAxis.Bytes)
        {
            plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericAutomatic
            {
                MinorTickGenerator = new ScottPlot.TickGenerators.LogMinorTickGenerator(),
                IntegerTicksOnly = true,
                LabelFormatter = x => Bytes(Math.Pow(10, x)),
            };
        }
        string yName = measure.Name;
        string xName = axis switch
        {
            PlotAxis.Compute => "client compute, all clients (s)",
            PlotAxis.Bytes => "bytes up + down, all clients",
            _ => "round",
        };
        string title = $"{char.ToUpperInvariant(yName[0])}{yName[1..]} by {(axis == PlotAxis.Rounds ? "round" : axis == PlotAxis.Compute ? "client compute" : "communication")}";
        plot.Title(subtitle is null ? title : $"{title}\n{subtitle}");
        plot.Axes.Title.Label.FontSize = subtitle is null ? 16 : 13;
        plot.XLabel(xName);
        plot.YLabel(yName);
        if (axis == PlotAxis.Rounds)
            plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericAutomatic { IntegerTicksOnly = true };
        plot.ShowLegend(ScottPlot.Edge.Right);
        var tmp = path + ".tmp.png";
        plot.SavePng(tmp, 1000, 540);
        File.Move(tmp, path, overwrite: true);
    }
}
