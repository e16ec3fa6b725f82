using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Ferret.Cli.Reports;
using Ferret.Core.Algorithms;
using Ferret.Onnx.Artifacts;
using Ferret.Training.Data;
using Ferret.Training.Runtime;
using Ferret.Training.Simulation;
using Ferret.Training.Tokenization;
using Spectre.Console;

namespace Ferret.Cli.Commands;

/// <summary><c>ferret simulate</c>: in-process federations of one or several algorithms on the same setup.</summary>
internal static class SimulateCommand
{
    private static readonly JsonSerializerOptions JsonOptions = new()
    {
        WriteIndented = true,
        NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    public static Command Create()
    {
        var algorithm = new Option<string>("--algorithm") { Description = "ferret, fedkseed, fedzo or fedavg.", DefaultValueFactory = _ => "ferret" };
        algorithm.AcceptOnlyFromAmong([.. FederatedAlgorithms.Names]);
        var compare = new Option<string?>("--compare") { Description = "Several algorithms on the identical setup, e.g. ferret,fedkseed,fedzo,fedavg." };
        var artifacts = new Option<DirectoryInfo>("--artifacts") { Description = "Artifact package (ferret export).", Required = true };
        var data = new Option<string>("--data") { Description = "Training data: a file (Alpaca/Dolly/GSM8K JSON or JSONL), a Natural Instructions folder, or a folder with train.jsonl and test.jsonl.", Required = true };
        var format = FormatOption();
        var test = new Option<string?>("--test") { Description = "Held-out data file (default: test.jsonl beside the training data, else 10 % held out)." };
        var clients = new Option<int>("--clients") { Description = "Clients N.", DefaultValueFactory = _ => 20 };
        var fraction = new Option<double>("--fraction") { Description = "Fraction m of clients sampled per round.", DefaultValueFactory = _ => 0.25 };
        var rounds = new Option<int>("--rounds") { Description = "Rounds R.", DefaultValueFactory = _ => 12 };
        var partition = new Option<string>("--partition") { Description = "iid, dirichlet or category.", DefaultValueFactory = _ => "iid" };
        partition.AcceptOnlyFromAmong("iid", "dirichlet", "category");
        var alpha = new Option<double>("--alpha") { Description = "Dirichlet alpha of label skew.", DefaultValueFactory = _ => 0.5 };
        var seed = new Option<ulong>("--seed") { Description = "Experiment seed.", DefaultValueFactory = _ => 42 };
        var localSteps = new Option<string?>("--local-steps") { Description = "Local steps T, one value or per algorithm (ferret=10,fedkseed=200); default: the reference." };
        var microBatches = new Option<string?>("--micro-batches") { Description = "Micro-batches per first-order step (n_accum)." };
        var localLr = new Option<string?>("--local-lr") { Description = "Local learning rate eta, one value or per algorithm (ferret=0.05,fedzo=2e-5)." };
        var serverLr = new Option<string?>("--server-lr") { Description = "Ferret's server learning rate (slr)." };
        var seeds = new Option<string?>("--seeds") { Description = "Candidate seeds K: one value, one per algorithm (ferret=200,fedkseed=4096), or several plain values (50,100,200,400) for one run of each seed-based algorithm per K." };
        var epsilon = new Option<string?>("--zo-eps") { Description = "Zeroth-order perturbation size." };
        var maxLength = new Option<int>("--max-length") { Description = "Tokens per example at most.", DefaultValueFactory = _ => 320 };
        var evalExamples = new Option<int>("--eval-examples") { Description = "Held-out examples scored each round.", DefaultValueFactory = _ => 64 };
        var generate = new Option<int>("--generate-examples") { Description = "Held-out examples decoded for Rouge-L each round.", DefaultValueFactory = _ => 16 };
        var threads = new Option<int>("--threads") { Description = "ONNX Runtime threads (0: one per core).", DefaultValueFactory = _ => 0 };
        var device = new Option<string>("--device") { Description = "cpu, cuda or cuda:N.", DefaultValueFactory = _ => "cpu" };
        var json = new Option<FileInfo?>("--json") { Description = "Write every round of every run to this JSON file." };
        var report = new Option<DirectoryInfo?>("--report") { Description = "Folder for comparison.md and the plot (with --compare)." };
        var preset = new Option<string?>("--preset") { Description = "The paper's settings: ni (Natural Instructions) or dolly (Dolly-15K); options given explicitly override them." };
        preset.AcceptOnlyFromAmong([.. PaperProtocol.All.Select(p => p.Name)]);
        var targetLoss = new Option<double?>("--target") { Description = "Cost to target: the eval loss each run must reach (default: the highest final eval loss among the runs)." };
        var targetMetric = new Option<double?>("--target-metric") { Description = "Cost to target: the score (--metric) each run must reach instead of an eval loss." };
        var metric = new Option<string>("--metric") { Description = "The score --target-metric is set on: rouge-l or exact-match.", DefaultValueFactory = _ => "rouge-l" };
        metric.AcceptOnlyFromAmong("rouge-l", "exact-match");
        var plotX = new Option<string>("--plot-x") { Description = "The plot's x-axis: rounds, compute (client seconds) or bytes (up + down).", DefaultValueFactory = _ => "rounds" };
        plotX.AcceptOnlyFromAmong("rounds", "compute", "bytes");
        var command = new Command("simulate", "Simulate federated fine-tuning with in-process clients driven through the algorithm interface.")
        {
            algorithm, compare, artifacts, data, format, test, preset, clients, fraction, rounds, partition, alpha, seed, localSteps, microBatches, localLr, serverLr, seeds,
            epsilon, maxLength, evalExamples, generate, threads, device, json, report, targetLoss, targetMetric, metric, plotX,
        };
        CommandAction.Set(command, parse =>
        {
            var package = ArtifactPackage.Open(parse.GetValue(artifacts)!.FullName);
            var tokenizer = Tokenizers.FromPackage(package);
            var (trainSet, testSet) = LoadData(parse.GetValue(data)!, parse.GetValue(test), (int)parse.GetValue(seed), parse.GetValue(format));
            var algorithms = parse.GetValue(compare) is { } list
                ? list.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                : [parse.GetValue(algorithm)!];
            foreach (var a in algorithms)
            {
                if (!FederatedAlgorithms.Names.Contains(a))
                    throw new ArgumentException($"--compare: unknown algorithm '{a}' (expected {string.Join(", ", FederatedAlgorithms.Names)}).");
            }
            var protocol = parse.GetValue(preset) is { } presetName ? PaperProtocol.Get(presetName) : null;
            bool Given(Option option) => parse.GetResult(option) is { Implicit: false };
            if (parse.GetValue(targetLoss) is not null && parse.GetValue(targetMetric) is not null)
                throw new ArgumentException("--target and --target-metric both set a target; give one.");
            if (parse.GetValue(targetLoss) is double tl && !double.IsFinite(tl))
                throw new ArgumentException($"--target {tl} is not a finite eval loss.");
            if (parse.GetValue(targetMetric) is double tm && !(tm is >= 0 and <= 1))
                throw new ArgumentException($"--target-metric {tm} lies outside [0, 1].");
            var sweep = SeedSweep(parse.GetValue(seeds));
            var runs = algorithms.SelectMany(a => sweep.Count > 1 && a is FederatedAlgorithms.Ferret or FederatedAlgorithms.FedKSeed
                ? sweep.Select(k => (Algorithm: a, K: (int?)k))
                : [(Algorithm: a, K: (int?)null)]).ToList();
            var results = new List<SimulationResult>();
            foreach (var (a, sweptK) in runs)
            {
                var settings = protocol?.Settings(a) ?? FederatedAlgorithms.ReferenceSettings(a);
                if (Setting(parse.GetValue(localSteps), a, "--local-steps") is double t)
                    settings.LocalSteps = (int)t;
                if (Setting(parse.GetValue(microBatches), a, "--micro-batches") is double mb)
                    settings.MicroBatches = (int)mb;
                if (Setting(parse.GetValue(localLr), a, "--local-lr") is double lr)
                    settings.LocalLearningRate = lr;
                if (Setting(parse.GetValue(serverLr), a, "--server-lr") is double slr)
                    settings.ServerLearningRate = slr;
                if (sweptK is int swept)
                    settings.CandidateSeeds = swept;
                else if (sweep.Count <= 1 && Setting(parse.GetValue(seeds), a, "--seeds") is double k)
                    settings.CandidateSeeds = (int)k;
                if (Setting(parse.GetValue(epsilon), a, "--zo-eps") is double eps)
                    settings.ZerothOrderEpsilon = eps;
                settings.Validate();
                var options = new SimulationOptions
                {
                    Algorithm = a,
                    Label = sweptK is int labelK ? $"{a} K={labelK}" : null,
                    Settings = settings,
                    Clients = protocol is not null && !Given(clients) ? protocol.ClientsFor(trainSet) : parse.GetValue(clients),
                    Fraction = protocol is not null && !Given(fraction) ? protocol.Fraction : parse.GetValue(fraction),
                    Rounds = protocol is not null && !Given(rounds) ? protocol.Rounds(a) : parse.GetValue(rounds),
                    Seed = parse.GetValue(seed),
                    Partition = protocol is not null && !Given(partition) ? protocol.Partition : parse.GetValue(partition) switch { "dirichlet" => PartitionScheme.Dirichlet, "category" => PartitionScheme.ByCategory, _ => PartitionScheme.Iid },
                    DirichletAlpha = protocol is not null && !Given(alpha) ? protocol.DirichletAlpha : parse.GetValue(alpha),
                    MaxLength = parse.GetValue(maxLength),
                    EvalExamples = parse.GetValue(evalExamples),
                    GenerateExamples = parse.GetValue(generate),
                    Session = new SessionSettings { IntraOpThreads = parse.GetValue(threads), Device = ExecutionDevice.Parse(parse.GetValue(device)!) },
                };
                AnsiConsole.MarkupLine($"[bold]{options.Label ?? a}[/]{(protocol is null ? "" : $" ({protocol.Name})")}: {options.Clients} clients, {options.Fraction:P0} per round, {options.Rounds} rounds, T = {settings.LocalSteps}, eta = {settings.LocalLearningRate}");
                results.Add(Simulator.Run(package, trainSet, testSet, options, tokenizer, r => Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"  round {r.Round,3}: eval loss {r.EvalLoss:F4}  Rouge-L {r.RougeL:F3}  exact {r.ExactMatch:F3}  train loss {r.TrainLoss:F3}  up {ComparisonReport.Bytes(r.BytesUpPerClient)}/client  down {ComparisonReport.Bytes(r.BytesDownPerClient)}  compute {r.ClientComputeSeconds:F2} s/client  {r.WallSeconds:F1} s"))));
            }
            if (parse.GetValue(json) is { } jsonFile)
            {
                var tmp = jsonFile.FullName + ".tmp";
                File.WriteAllText(tmp, JsonSerializer.Serialize(results.Select(r => new { algorithm = r.Algorithm, label = r.Label, fingerprint = r.FinalFingerprint, settings = r.Options.Settings, rounds = r.Rounds }), JsonOptions));
                File.Move(tmp, jsonFile.FullName, overwrite: true);
            }
            var target = parse.GetValue(targetMetric) is double goal
                ? new Target(parse.GetValue(metric) == "exact-match" ? TargetMeasure.ExactMatch : TargetMeasure.RougeL, goal)
                : parse.GetValue(targetLoss) is double loss ? new Target(TargetMeasure.EvalLoss, loss) : TargetCost.DefaultTarget(results);
            var markdown = ComparisonReport.Markdown(results) + Environment.NewLine + ComparisonReport.CostMarkdown(results, target);
            Console.WriteLine();
            Console.WriteLine(markdown);
            if (parse.GetValue(report) is { } dir)
            {
                var axis = Enum.Parse<PlotAxis>(parse.GetValue(plotX)!, ignoreCase: true);
                string plotName = $"{(target.Measure == TargetMeasure.EvalLoss ? "eval-loss" : target.Measure == TargetMeasure.RougeL ? "rouge-l" : "exact-match")}-by-{parse.GetValue(plotX)}.png";
                Directory.CreateDirectory(dir.FullName);
                File.WriteAllText(Path.Combine(dir.FullName, "comparison.md"), markdown);
                ComparisonReport.Plot(results, Path.Combine(dir.FullName, plotName), axis, target);
                AnsiConsole.MarkupLine($"wrote [bold]{Markup.Escape(Path.Combine(dir.FullName, "comparison.md"))}[/] and [bold]{plotName}[/]");
            }
            return 0;
        });
        return command;
    }

    /// <summary>Several plain values of <c>--seeds</c> (50,100,200,400): a sweep over K; otherwise empty.</summary>
    internal static IReadOnlyList<int> SeedSweep(string? text)
    {
        if (string.IsNullOrWhiteSpace(text) || text.Contains('=', StringComparison.Ordinal))
            return [];
        var parts = text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        if (parts.Length < 2)
            return [];
        return parts.Select(p => int.TryParse(p, NumberStyles.Integer, CultureInfo.InvariantCulture, out int k) && k >= 2
            ? k
            : throw new ArgumentException($"--seeds: '{p}' in the sweep '{text}' is not a whole number of at least 2.")).ToList();
    }

    /// <summary>
    /// A hyper-parameter for one algorithm: either one value for all (<c>0.05</c>) or per algorithm
    /// (<c>ferret=0.05,fedkseed=2e-5</c>); null when not given for this algorithm.
    /// </summary>
    internal static double? Setting(string? text, string algorithm, string option)
    {
        if (string.IsNullOrWhiteSpace(text))
            return null;
        foreach (var part in text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var kv = part.Split('=', 2);
            string value = kv.Length == 2 ? kv[1] : kv[0];
            if (kv.Length == 2 && kv[0] != algorithm)
                continue;
            return double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out var v)
                ? v
                : throw new ArgumentException($"{option}: '{part}' is not a number or algorithm=number.");
        }
        return null;
    }

    /// <summary>The <c>--format</c> option shared by the commands that read instruction data.</summary>
    internal static Option<DataFormat> FormatOption() =>
        new("--format") { Description = "Data format: Auto (from the file), Alpaca, CodeAlpaca (category = programming language), Dolly, NaturalInstructions, Gsm8k, Text (plain text for pretraining: a text field per JSONL record, or one document per line of a .txt file).", DefaultValueFactory = _ => DataFormat.Auto };

    internal static (List<InstructionExample> Train, List<InstructionExample> Test) LoadData(string data, string? test, int seed, DataFormat format = DataFormat.Auto)
    {
        string trainPath = data;
        if (Directory.Exists(data) && File.Exists(Path.Combine(data, "train.jsonl")))
        {
            trainPath = Path.Combine(data, "train.jsonl");
            test ??= File.Exists(Path.Combine(data, "test.jsonl")) ? Path.Combine(data, "test.jsonl") : null;
        }
        var trainSet = Read(trainPath, format);
        if (test is not null)
            return (trainSet, Read(test, format));
        return Partitioner.HoldOutFraction(trainSet, 0.1, seed);
    }

    private static List<InstructionExample> Read(string path, DataFormat format)
    {
        var set = InstructionData.Read(path, format);
        foreach (var p in set.Problems.Take(5))
            AnsiConsole.MarkupLine($"[yellow]skipped[/] {Markup.Escape(p)}");
        if (set.Problems.Count > 5)
            AnsiConsole.MarkupLine($"[yellow]skipped {set.Problems.Count - 5} more malformed records[/]");
        if (set.Examples.Count == 0)
            throw new InvalidDataException($"'{path}' holds no usable examples.");
        return [.. set.Examples];
    }
}
