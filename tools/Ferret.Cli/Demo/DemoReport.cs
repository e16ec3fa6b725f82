using System.Globalization;
using Ferret.Cli.Reports;
using Ferret.Core.Protocol;
using Ferret.Training.Data;
using Spectre.Console;

namespace Ferret.Cli.Demo;

/// <summary>The demo's closing view: the round table, the held-out scores before and after, and a few held-out prompts answered.</summary>
internal static class DemoReport
{
    /// <summary>Held-out prompts shown, spread evenly over the tasks.</summary>
    private const int Shown = 6;

    public static DemoSummary Summarise(string algorithm, int clients, List<RoundEvent> events, Dictionary<int, List<string>> fingerprints, int updates, string fingerprint,
        IReadOnlyList<InstructionExample> heldOut, HeldOutScore before, HeldOutScore after, TimeSpan elapsed)
    {
        var rounds = new List<DemoRound>();
        List<RoundEvent> completed;
        lock (events)
            completed = events.Where(e => e.Kind == RoundEvent.Completed).OrderBy(e => e.Round).ToList();
        foreach (var e in completed)
        {
            List<string> reported;
            lock (fingerprints)
                reported = [.. fingerprints.GetValueOrDefault(e.Round) ?? []];
            bool agree = reported.Count > 0 && !reported.Any(f => f.StartsWith("MISMATCH", StringComparison.Ordinal)) && reported.Distinct().Count() == 1;
            rounds.Add(new DemoRound(e.Round, e.Aggregated, e.Assigned, e.MeanTrainLoss, e.BytesUp, e.BytesDown, e.Seconds, reported.Count, agree));
        }

        // Narrow headers: the table must fit an 80-column log as well as a terminal.
        var table = new Table().AddColumn("round").AddColumn(new TableColumn("packets").RightAligned()).AddColumn(new TableColumn("train loss").RightAligned())
            .AddColumn(new TableColumn("up/client").RightAligned()).AddColumn(new TableColumn("update").RightAligned())
            .AddColumn(new TableColumn("latency").RightAligned()).AddColumn("models");
        foreach (var r in rounds)
        {
            string agreement = r.FingerprintsReported == 0 ? "unreported" : r.FingerprintsAgree ? $"{r.FingerprintsReported} agree" : "[red]MISMATCH[/]";
            table.AddRow(r.Round.ToString(CultureInfo.InvariantCulture), $"{r.Packets}/{r.Assigned}",
                r.TrainLoss?.ToString("F4", CultureInfo.InvariantCulture) ?? "-", ComparisonReport.Bytes(r.BytesUp / (double)Math.Max(1, r.Packets)),
                ComparisonReport.Bytes(r.BytesDown), r.LatencySeconds.ToString("F1", CultureInfo.InvariantCulture) + " s", agreement);
        }
        AnsiConsole.Write(table);

        int perTask = (Shown + heldOut.Select(e => e.Category).Distinct().Count() - 1) / Math.Max(1, heldOut.Select(e => e.Category).Distinct().Count());
        var shown = heldOut.Select((e, i) => (e, i)).GroupBy(x => x.e.Category).SelectMany(g => g.Take(perTask)).OrderBy(x => x.i)
            .Select(x => new DemoExample(x.e.Category, x.e.Instruction, x.e.Input, x.e.Output, before.Answers[x.i], after.Answers[x.i])).ToList();
        var examples = new Table().Title("held-out prompts (words no client trained on)").AddColumn("instruction").AddColumn("input").AddColumn("expected")
            .AddColumn("before").AddColumn("after");
        foreach (var x in shown)
        {
            examples.AddRow(Markup.Escape(x.Instruction), Markup.Escape(x.Input), Markup.Escape(x.Expected), Answer(x.Before, x.Expected), Answer(x.After, x.Expected));
        }
        AnsiConsole.Write(examples);

        var result = new Table().AddColumn("").AddColumn(new TableColumn("before").RightAligned()).AddColumn(new TableColumn("after").RightAligned());
        result.AddRow($"exact match ({heldOut.Count} held-out)", F(before.ExactMatch, "F3"), F(after.ExactMatch, "F3"));
        result.AddRow("Rouge-L", F(before.RougeL, "F3"), F(after.RougeL, "F3"));
        result.AddRow("eval loss", F(before.EvalLoss, "F4"), F(after.EvalLoss, "F4"));
        AnsiConsole.Write(result);
        AnsiConsole.MarkupLine($"{updates} global updates in the round log; model fingerprint {fingerprint[..16]}; {elapsed.TotalSeconds:F0} s in all");
        return new DemoSummary(algorithm, rounds.Count, clients, "exact_match", before.ExactMatch, after.ExactMatch, before.EvalLoss, after.EvalLoss,
            fingerprint, Math.Round(elapsed.TotalSeconds, 1), heldOut.Count, rounds, shown);
    }

    private static string F(double value, string format) => value.ToString(format, CultureInfo.InvariantCulture);

    /// <summary>An answer as printed: green when it is exactly right, control characters made visible, long ones cut.</summary>
    private static string Answer(string answer, string expected)
    {
        var visible = answer.ReplaceLineEndings("\\n");
        if (visible.Length > 18)
            visible = visible[..17] + "…";
        if (visible.Length == 0)
            visible = "(nothing)";
        return Ferret.Training.Evaluation.Metrics.ExactMatch(answer, expected) ? $"[green]{Markup.Escape(visible)}[/]" : Markup.Escape(visible);
    }
}
