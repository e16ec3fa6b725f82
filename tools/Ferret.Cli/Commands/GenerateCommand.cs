using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Ferret.Onnx.Artifacts;
using Ferret.Training.Data;
using Ferret.Training.Evaluation;
using Ferret.Training.Runtime;
using Ferret.Training.Tokenization;

namespace Ferret.Cli.Commands;

/// <summary><c>ferret generate</c>: what a model answers, to compare a package before and after tuning.</summary>
internal static class GenerateCommand
{
    public static Command Create()
    {
        var artifacts = new Option<DirectoryInfo>("--artifacts") { Description = "Artifact package (ferret export, ferret train, ferret model).", Required = true };
        var prompt = new Option<string[]>("--prompt") { Description = "An instruction to answer; repeat for several.", AllowMultipleArgumentsPerToken = false };
        var promptsFile = new Option<FileInfo?>("--prompts-file") { Description = "More prompts: a text file (one per line) or instruction data (JSON/JSONL: instruction and input)." };
        var maxNew = new Option<int>("--max-new-tokens") { Description = "Tokens to generate at most per prompt.", DefaultValueFactory = _ => 64 };
        var temperature = new Option<double>("--temperature") { Description = "0: greedy; above 0: sample from softmax(logits / T).", DefaultValueFactory = _ => 0 };
        var seed = new Option<int>("--seed") { Description = "Seed of the sampling (with --temperature above 0).", DefaultValueFactory = _ => 1 };
        var template = Choices.Create("--template", "How a prompt is shown to the model: alpaca (the template training used) or none (as is).", "alpaca", "alpaca", "none");
        var threads = new Option<int>("--threads") { Description = "ONNX Runtime threads (0: one per core).", DefaultValueFactory = _ => 0 };
        var json = new Option<bool>("--json") { Description = "Print one JSON object per prompt (JSON lines)." };
        var command = new Command("generate", "Answer prompts with an artifact package's model (greedy or sampled).")
        {
            artifacts, prompt, promptsFile, maxNew, temperature, seed, template, threads, json,
        };
        CommandAction.Set(command, parse =>
        {
            int max = parse.GetValue(maxNew);
            if (max < 1)
                throw new ArgumentException($"--max-new-tokens must be at least 1 (got {max}).");
            double t = parse.GetValue(temperature);
            if (!(t >= 0) || double.IsInfinity(t))
                throw new ArgumentException($"--temperature must be 0 or more (got {t.ToString(CultureInfo.InvariantCulture)}).");
            if (parse.GetValue(threads) < 0)
                throw new ArgumentException($"--threads must not be negative (got {parse.GetValue(threads)}).");
            var prompts = (parse.GetValue(prompt) ?? []).Select(p => new InstructionExample(p, "", "", "")).ToList();
            if (parse.GetValue(promptsFile) is { } file)
                prompts.AddRange(ReadPrompts(file.FullName));
            if (prompts.Count == 0)
                throw new ArgumentException("Nothing to answer: pass --prompt TEXT or --prompts-file FILE.");
            var package = ArtifactPackage.Open(parse.GetValue(artifacts)!.FullName);
            var tokenizer = Tokenizers.FromPackage(package);
            var encoder = new ExampleEncoder(tokenizer, package.Config.MaxPositions);
            bool raw = parse.GetValue(template) == "none";
            using var generator = new GreedyGenerator(package.Layout, package.LogitsGraphPath, package.LoadParameters(), package.Config.VocabSize,
                new SessionSettings { IntraOpThreads = parse.GetValue(threads) });
            var random = new Random(parse.GetValue(seed));
            var output = parse.InvocationConfiguration.Output;
            foreach (var p in prompts)
            {
                int[] ids = raw ? [tokenizer.BosId, .. tokenizer.Encode(p.Instruction)] : encoder.EncodePrompt(p);
                int room = package.Config.MaxPositions - ids.Length;
                if (room < 1)
                    throw new ArgumentException($"A prompt of {ids.Length} tokens leaves no room in the model's {package.Config.MaxPositions} positions: '{Shorten(p.Instruction)}'.");
                var answer = tokenizer.Decode(generator.Generate(ids, Math.Min(max, room), tokenizer.EosId, t, random));
                if (parse.GetValue(json))
                {
                    output.WriteLine(CliJson.Serialize(new Dictionary<string, object?> { ["prompt"] = p.Instruction, ["input"] = p.Input, ["answer"] = answer }));
                }
                else
                {
                    output.WriteLine($"prompt: {p.Instruction}" + (p.Input.Length > 0 ? $" [{p.Input}]" : ""));
                    output.WriteLine($"answer: {answer}");
                    output.WriteLine();
                }
            }
            return 0;
        });
        return command;
    }

    private static string Shorten(string text) => text.Length <= 60 ? text : text[..57] + "...";

    private static IEnumerable<InstructionExample> ReadPrompts(string path)
    {
        if (path.EndsWith(".json", StringComparison.OrdinalIgnoreCase) || path.EndsWith(".jsonl", StringComparison.OrdinalIgnoreCase))
        {
            var set = InstructionData.Read(path);
            if (set.Examples.Count == 0)
                throw new InvalidDataException($"'{path}' holds no usable prompts.");
            return set.Examples.Select(e => e with { Output = "" });
        }
        if (!File.Exists(path))
            throw new FileNotFoundException($"Prompts file '{path}' does not exist.", path);
        var lines = File.ReadAllLines(path).Where(l => !string.IsNullOrWhiteSpace(l)).Select(l => new InstructionExample(l.Trim(), "", "", "")).ToList();
        return lines.Count > 0 ? lines : throw new InvalidDataException($"'{path}' holds no prompts (one per line).");
    }
}
