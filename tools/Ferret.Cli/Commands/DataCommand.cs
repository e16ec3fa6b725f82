using System.CommandLine;
using System.Globalization;
using Ferret.Training.Data;
using Spectre.Console;

namespace Ferret.Cli.Commands;

/// <summary><c>ferret data</c>: instruction data utilities.</summary>
internal static class DataCommand
{
    private static readonly string[] Files = ["train.jsonl", "test.jsonl"];

    public static Command Create()
    {
        var output = new Option<DirectoryInfo>("--out") { Description = "Folder for train.jsonl and test.jsonl.", Required = true };
        var seed = new Option<int>("--seed") { Description = "Seed of the examples.", DefaultValueFactory = _ => 1 };
        var train = new Option<int>("--train") { Description = "Training examples.", DefaultValueFactory = _ => 2000 };
        var test = new Option<int>("--test") { Description = "Held-out examples.", DefaultValueFactory = _ => 200 };
        var overwrite = new Option<bool>("--overwrite") { Description = "Replace train.jsonl and test.jsonl when the folder already has them." };
        var tasks = new Option<string>("--tasks") { Description = $"Comma-separated tasks: {string.Join(", ", SyntheticTasks.Names)}.", DefaultValueFactory = _ => string.Join(',', SyntheticTasks.Names) };
        var synth = new Command("synth", "Write synthetic instruction tasks with exact answers (Alpaca JSONL with a category per task).")
        {
            output, seed, train, test, tasks, overwrite,
        };
        CommandAction.Set(synth, parse =>
        {
            var names = parse.GetValue(tasks)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            foreach (var n in names)
            {
                if (!SyntheticTasks.Names.Contains(n))
                    throw new ArgumentException($"--tasks: unknown task '{n}' (expected {string.Join(", ", SyntheticTasks.Names)}).");
            }
            int nTrain = parse.GetValue(train), nTest = parse.GetValue(test);
            if (nTrain < 1 || nTest < 1)
                throw new ArgumentException("--train and --test must be positive.");
            var dir = parse.GetValue(output)!.FullName;
            if (File.Exists(dir))
                throw new IOException($"'{dir}' is a file; --out names a folder.");
            foreach (var name in Files)
            {
                if (File.Exists(Path.Combine(dir, name)) && !parse.GetValue(overwrite))
                    throw new IOException($"'{Path.Combine(dir, name)}' already exists; pass --overwrite to replace it.");
            }
            Directory.CreateDirectory(dir);
            int s = parse.GetValue(seed);
            var trainSet = SyntheticTasks.Sample(names, nTrain, s);
            var testSet = SyntheticTasks.Sample(names, nTest, s + 1_000_003);
            SyntheticTasks.WriteJsonLines(Path.Combine(dir, "train.jsonl"), trainSet);
            SyntheticTasks.WriteJsonLines(Path.Combine(dir, "test.jsonl"), testSet);
            var table = new Table().AddColumn("task").AddColumn(new TableColumn("train").RightAligned()).AddColumn(new TableColumn("test").RightAligned()).AddColumn("example");
            foreach (var n in names)
            {
                var e = trainSet.First(x => x.Category == n);
                table.AddRow(n, trainSet.Count(x => x.Category == n).ToString(CultureInfo.InvariantCulture), testSet.Count(x => x.Category == n).ToString(CultureInfo.InvariantCulture),
                    Markup.Escape($"{e.Instruction} {e.Input} -> {e.Output}"));
            }
            AnsiConsole.Write(table);
            AnsiConsole.MarkupLine($"wrote [bold]{Markup.Escape(Path.Combine(dir, "train.jsonl"))}[/] and [bold]test.jsonl[/]");
            return 0;
        });
        return new Command("data", "Instruction data utilities.") { synth };
    }
}
