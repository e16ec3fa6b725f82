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
        var overwrite = Overwrite();
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
            var dir = OutputFolder(parse.GetValue(output)!, parse.GetValue(overwrite));
            int s = parse.GetValue(seed);
            var trainSet = SyntheticTasks.Sample(names, nTrain, s);
            var testSet = SyntheticTasks.Sample(names, nTest, s + 1_000_003);
            WriteSplit(dir, trainSet, testSet);
            Summarise("task", names, trainSet, testSet, dir);
            return 0;
        });
        return new Command("data", "Instruction data utilities.") { synth, Corpus(), Skills() };
    }

    /// <summary><c>ferret data corpus</c>: the demo base model's pretraining corpus.</summary>
    private static Command Corpus()
    {
        var output = new Option<DirectoryInfo>("--out") { Description = "Folder for train.jsonl and test.jsonl (plain text: a text field per line).", Required = true };
        var documents = new Option<int>("--documents") { Description = "Training documents.", DefaultValueFactory = _ => 20000 };
        var test = new Option<int>("--test") { Description = "Held-out documents for the eval loss.", DefaultValueFactory = _ => 200 };
        var seed = new Option<int>("--seed") { Description = "Seed of the documents.", DefaultValueFactory = _ => 1 };
        var overwrite = Overwrite();
        var command = new Command("corpus",
            $"Write the pretraining corpus of the demo's base model: repeated words, textbook sentences and English instructions of the word skills ({string.Join(", ", WordSkills.Names)}); held-out words never appear.")
        {
            output, documents, test, seed, overwrite,
        };
        CommandAction.Set(command, parse =>
        {
            int n = parse.GetValue(documents), nTest = parse.GetValue(test);
            if (n < 1 || nTest < 1)
                throw new ArgumentException("--documents and --test must be positive.");
            var dir = OutputFolder(parse.GetValue(output)!, parse.GetValue(overwrite));
            int s = parse.GetValue(seed);
            var train = WordSkills.Corpus(n, s);
            WriteSplit(dir, train, WordSkills.Corpus(nTest, s + 1_000_003));
            var table = new Table().AddColumn("kind").AddColumn(new TableColumn("documents").RightAligned()).AddColumn("example");
            foreach (var group in train.GroupBy(e => e.Category).OrderBy(g => g.Key, StringComparer.Ordinal))
                table.AddRow(group.Key, group.Count().ToString(CultureInfo.InvariantCulture), Markup.Escape(Shorten(group.First().Output)));
            AnsiConsole.Write(table);
            AnsiConsole.MarkupLine($"wrote [bold]{Markup.Escape(Path.Combine(dir, "train.jsonl"))}[/] ({train.Sum(e => e.Output.Length + 2):N0} tokens with the byte tokenizer) and [bold]test.jsonl[/]");
            return 0;
        });
        return command;
    }

    /// <summary><c>ferret data skills</c>: instruction tasks on training words, held-out prompts on reserved words.</summary>
    private static Command Skills()
    {
        var output = new Option<DirectoryInfo>("--out") { Description = "Folder for train.jsonl and test.jsonl.", Required = true };
        var train = new Option<int>("--train") { Description = "Training examples.", DefaultValueFactory = _ => 2000 };
        var test = new Option<int>("--test") { Description = "Held-out examples (on words no training example uses).", DefaultValueFactory = _ => 200 };
        var tasks = new Option<string>("--tasks") { Description = $"Comma-separated skills: {string.Join(", ", WordSkills.Names)}.", DefaultValueFactory = _ => string.Join(',', WordSkills.Names) };
        var language = Choices.Create("--language", "Language of the instructions: german (the demo's tuning data) or english (what the base was pretrained on).", "german", "german", "english");
        var seed = new Option<int>("--seed") { Description = "Seed of the examples.", DefaultValueFactory = _ => 1 };
        var overwrite = Overwrite();
        var command = new Command("skills", "Write word-skill instruction tasks (Alpaca JSONL, a category per skill); the held-out examples use words reserved for evaluation.")
        {
            output, train, test, tasks, language, seed, overwrite,
        };
        CommandAction.Set(command, parse =>
        {
            var names = parse.GetValue(tasks)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(n => n.ToLowerInvariant()).ToList();
            foreach (var n in names)
            {
                if (!WordSkills.Names.Contains(n))
                    throw new ArgumentException($"--tasks: unknown skill '{n}' (expected {string.Join(", ", WordSkills.Names)}).");
            }
            int nTrain = parse.GetValue(train), nTest = parse.GetValue(test);
            if (nTrain < 1 || nTest < 1)
                throw new ArgumentException("--train and --test must be positive.");
            var dir = OutputFolder(parse.GetValue(output)!, parse.GetValue(overwrite));
            int s = parse.GetValue(seed);
            var lang = Enum.Parse<InstructionLanguage>(parse.GetValue(language)!, ignoreCase: true);
            var trainSet = WordSkills.Training(names, nTrain, s, lang);
            var testSet = WordSkills.HeldOut(names, nTest, s + 1_000_003, lang);
            WriteSplit(dir, trainSet, testSet);
            Summarise("skill", names, trainSet, testSet, dir);
            return 0;
        });
        return command;
    }

    private static Option<bool> Overwrite() => new("--overwrite") { Description = "Replace train.jsonl and test.jsonl when the folder already has them." };

    /// <summary>The --out folder, created; existing data files are kept unless --overwrite (the CLI's convention).</summary>
    private static string OutputFolder(DirectoryInfo output, bool overwrite)
    {
        var dir = output.FullName;
        if (File.Exists(dir))
            throw new IOException($"'{dir}' is a file; --out names a folder.");
        foreach (var name in Files)
        {
            if (File.Exists(Path.Combine(dir, name)) && !overwrite)
                throw new IOException($"'{Path.Combine(dir, name)}' already exists; pass --overwrite to replace it.");
        }
        Directory.CreateDirectory(dir);
        return dir;
    }

    private static void WriteSplit(string dir, IEnumerable<InstructionExample> train, IEnumerable<InstructionExample> test)
    {
        InstructionData.WriteJsonLines(Path.Combine(dir, Files[0]), train);
        InstructionData.WriteJsonLines(Path.Combine(dir, Files[1]), test);
    }

    /// <summary>Examples per category with one of each, and where they went.</summary>
    private static void Summarise(string kind, IEnumerable<string> names, List<InstructionExample> train, List<InstructionExample> test, string dir)
    {
        var table = new Table().AddColumn(kind).AddColumn(new TableColumn("train").RightAligned()).AddColumn(new TableColumn("test").RightAligned()).AddColumn("example");
        foreach (var n in names)
        {
            var e = train.First(x => x.Category == n);
            table.AddRow(n, train.Count(x => x.Category == n).ToString(CultureInfo.InvariantCulture), test.Count(x => x.Category == n).ToString(CultureInfo.InvariantCulture),
                Markup.Escape($"{e.Instruction} {e.Input} -> {e.Output}"));
        }
        AnsiConsole.Write(table);
        AnsiConsole.MarkupLine($"wrote [bold]{Markup.Escape(Path.Combine(dir, Files[0]))}[/] and [bold]{Files[1]}[/]");
    }

    private static string Shorten(string text)
    {
        var line = text.ReplaceLineEndings(" ");
        return line.Length <= 60 ? line : line[..57] + "...";
    }
}
