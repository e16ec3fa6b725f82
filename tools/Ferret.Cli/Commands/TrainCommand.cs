using System.CommandLine;
using System.Globalization;
using Ferret.Onnx.Artifacts;
using Ferret.Training;
using Ferret.Training.Data;
using Ferret.Training.Runtime;
using Ferret.Training.Tokenization;
using Spectre.Console;

namespace Ferret.Cli.Commands;

/// <summary><c>ferret train</c>: centralized fine-tuning of an artifact package on a data set.</summary>
internal static class TrainCommand
{
    public static Command Create()
    {
        var artifacts = new Option<DirectoryInfo>("--artifacts") { Description = "Artifact package to start from.", Required = true };
        var data = new Option<string>("--data") { Description = "Training data (file, Natural Instructions folder, or a folder with train.jsonl/test.jsonl).", Required = true };
        var test = new Option<string?>("--test") { Description = "Held-out data file." };
        var output = new Option<DirectoryInfo>("--out") { Description = "Folder for the tuned package.", Required = true };
        var steps = new Option<int>("--steps") { Description = "Optimizer steps.", DefaultValueFactory = _ => 200 };
        var batch = new Option<int>("--batch") { Description = "Examples per micro-batch.", DefaultValueFactory = _ => 4 };
        var accumulate = new Option<int>("--accumulate") { Description = "Micro-batches per step.", DefaultValueFactory = _ => 1 };
        var optimizer = Choices.Create("--optimizer", "The optimizer.", "adamw", "sgd", "adamw");
        var lr = new Option<float>("--lr") { Description = "Learning rate.", DefaultValueFactory = _ => 1e-3f };
        var clip = new Option<float>("--clip") { Description = "Gradient-norm clipping (0: off).", DefaultValueFactory = _ => 1f };
        var evalEvery = new Option<int>("--eval-every") { Description = "Steps between evaluations.", DefaultValueFactory = _ => 50 };
        var maxLength = new Option<int>("--max-length") { Description = "Tokens per example at most.", DefaultValueFactory = _ => 320 };
        var threads = new Option<int>("--threads") { Description = "ONNX Runtime threads (0: one per core).", DefaultValueFactory = _ => 0 };
        var device = new Option<string>("--device") { Description = "cpu, cuda or cuda:N.", DefaultValueFactory = _ => "cpu" };
        var overwrite = new Option<bool>("--overwrite") { Description = "Replace an existing output package." };
        var format = SimulateCommand.FormatOption();
        var command = new Command("train", "Fine-tune an exported model centrally and save the tuned parameters as a new package.")
        {
            artifacts, data, format, test, output, steps, batch, accumulate, optimizer, lr, clip, evalEvery, maxLength, threads, device, overwrite,
        };
        CommandAction.Set(command, parse =>
        {
            // Checked before anything loads, in the options' own words.
            float rate = parse.GetValue(lr), clipNorm = parse.GetValue(clip);
            if (!(rate > 0) || !float.IsFinite(rate))
                throw new ArgumentException($"--lr must be a positive number (got {rate.ToString(CultureInfo.InvariantCulture)}).");
            if (!(clipNorm >= 0) || !float.IsFinite(clipNorm))
                throw new ArgumentException($"--clip must be 0 (off) or a positive norm (got {clipNorm.ToString(CultureInfo.InvariantCulture)}).");
            if (parse.GetValue(maxLength) < 4)
                throw new ArgumentException($"--max-length must be at least 4 (got {parse.GetValue(maxLength)}).");
            if (parse.GetValue(threads) < 0)
                throw new ArgumentException($"--threads must not be negative (got {parse.GetValue(threads)}).");
            _ = Positive(parse.GetValue(steps), "--steps") + Positive(parse.GetValue(batch), "--batch") + Positive(parse.GetValue(accumulate), "--accumulate")
                + Positive(parse.GetValue(evalEvery), "--eval-every");
            var package = ArtifactPackage.Open(parse.GetValue(artifacts)!.FullName);
            var outDir = parse.GetValue(output)!.FullName;
            if (Directory.Exists(outDir) && !parse.GetValue(overwrite))
                throw new IOException($"'{outDir}' already exists; pass --overwrite to replace it.");
            var encoder = new ExampleEncoder(Tokenizers.FromPackage(package), parse.GetValue(maxLength));
            var (trainSet, testSet) = SimulateCommand.LoadData(parse.GetValue(data)!, parse.GetValue(test), 1, parse.GetValue(format));
            var options = new TrainingOptions
            {
                Steps = Positive(parse.GetValue(steps), "--steps"),
                BatchSize = Positive(parse.GetValue(batch), "--batch"),
                MicroBatches = Positive(parse.GetValue(accumulate), "--accumulate"),
                Optimizer = parse.GetValue(optimizer)!,
                LearningRate = parse.GetValue(lr),
                ClipNorm = parse.GetValue(clip),
                EvalEvery = Positive(parse.GetValue(evalEvery), "--eval-every"),
                Session = new SessionSettings { IntraOpThreads = parse.GetValue(threads), Device = ExecutionDevice.Parse(parse.GetValue(device)!) },
            };
            var train = trainSet.Select(encoder.Encode).ToList();
            var held = testSet.Select(encoder.Encode).ToList();
            float[] tuned = [];
            AnsiConsole.Progress().Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn()).Start(ctx =>
            {
                var task = ctx.AddTask("training", maxValue: options.Steps);
                tuned = CentralizedTraining.Run(package, train, held, encoder, options, p =>
                {
                    task.Value = p.Step;
                    AnsiConsole.MarkupLine(string.Create(CultureInfo.InvariantCulture,
                        $"step {p.Step,5}  train loss {p.TrainLoss:F4}{(p.EvalLoss is double e ? $"  eval loss {e:F4}" : "")}  {p.TokensPerSecond:F0} tokens/s"));
                });
            });
            var saved = CentralizedTraining.Save(package, tuned, outDir, parse.GetValue(overwrite));
            AnsiConsole.MarkupLine($"saved [bold]{Markup.Escape(saved.Directory)}[/] (fingerprint {saved.Manifest.ParametersSha256[..16]}...)");
            return 0;
        });
        return command;
    }

    private static int Positive(int value, string option) =>
        value > 0 ? value : throw new ArgumentException($"{option} must be positive (got {value}).");
}
