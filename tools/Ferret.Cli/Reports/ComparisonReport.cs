using System.Globalization;
using System.Text;
using Ferret.Training.Simulation;

namespace Ferret.Cli.Reports;

/// <summary>The side-by-side view of simulation runs: a Markdown table and a PNG of eval loss against rounds.</summary>
internal static class ComparisonReport
{
    public static string Markdown(IReadOnlyList<SimulationResult> results)
    {
        ArgumentNullException.ThrowIfNull(results);
        var sb = new StringBuilder();
        sb.AppendLine("| algorithm | rounds | eval loss (start -> end) | Rouge-L (start -> end) | wall time | client compute / round | coordinator / round | forward + backward passes / client / round | upload / client / round | download / client / round | epsilon |");
        sb.AppendLine("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
        foreach (var r in results)
        {
            var first = r.Rounds[0];
            var last = r.Rounds[^1];
            var trained = r.Rounds.Skip(1).ToList();
            sb.AppendLine(string.Create(CultureInfo.InvariantCulture,
                $"| {r.Label} | {trained.Count} | {first.EvalLoss:F3} -> {last.EvalLoss:F3} | {first.RougeL:F3} -> {last.RougeL:F3} | {trained.Sum(x => x.WallSeconds):F1} s | {trained.Average(x => x.ClientComputeSeconds):F2} s | {trained.Average(x => x.CoordinatorSeconds):F3} s | {trained.Average(x => x.ForwardPassesPerClient):F0} + {trained.Average(x => x.BackwardPassesPerClient):F0} | {Bytes(trained.Average(x => x.BytesUpPerClient))} | {Bytes(trained.Average(x => x.BytesDownPerClient))} | {(last.Epsilon is { } eps ? eps.ToString("F2", CultureInfo.InvariantCulture) : "-")} |"));
        }
        return sb.ToString();
    }

    public static string Bytes(double bytes) => bytes switch
    {
        < 1024 => string.Create(CultureInfo.InvariantCulture, $"{bytes:F0} B"),
        < 1024 * 1024 => string.Create(CultureInfo.InvariantCulture, $"{bytes / 1024:F1} KiB"),
        _ => string.Create(CultureInfo.InvariantCulture, $"{bytes / (1024 * 1024):F1} MiB"),
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

    /// <summary>Eval loss against rounds, one curve per run: whole-number rounds, the legend beside the plot (never over a curve), the setup as subtitle.</summary>
    public static void Plot(IReadOnlyList<SimulationResult> results, string path, string? subtitle = null)
    {
        ArgumentNullException.ThrowIfNull(results);
        var plot = new ScottPlot.Plot();
        foreach (var r in results)
        {
            var xs = r.Rounds.Select(x => (double)x.Round).ToArray();
            var ys = r.Rounds.Select(x => x.EvalLoss).ToArray();
            var line = plot.Add.Scatter(xs, ys);
            line.LegendText = r.Label;
        }
        plot.Title(subtitle is null ? "Eval loss by round" : $"Eval loss by round\n{subtitle}");
        plot.Axes.Title.Label.FontSize = subtitle is null ? 16 : 13;
        plot.XLabel("round");
        plot.YLabel("eval loss");
        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericAutomatic { IntegerTicksOnly = true };
        plot.ShowLegend(ScottPlot.Edge.Right);
        var tmp = path + ".tmp.png";
        plot.SavePng(tmp, 1000, 540);
        File.Move(tmp, path, overwrite: true);
    }
}
