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
        var seeds = new Option<string?>("--seeds") { Description = "Candidate seeds K." };
        var epsilon = new Option<string?>("--zo-eps") { Description = "Zeroth-order perturbation size." };
        var maxLength = new Option<int>("--max-length") { Description = "Tokens per example at most.", DefaultValueFactory = _ => 320 };
        var evalExamples = new Option<int>("--eval-examples") { Description = "Held-out examples scored each round.", DefaultValueFactory = _ => 64 };
        var generate = new Option<int>("--generate-examples") { Description = "Held-out examples decoded for Rouge-L each round.", DefaultValueFactory = _ => 16 };
        var threads = new Option<int>("--threads") { Description = "ONNX Runtime threads (0: one per core).", DefaultValueFactory = _ => 0 };
        var device = new Option<string>("--device") { Description = "cpu, cuda or cuda:N.", DefaultValueFactory = _ => "cpu" };
        var json = new Option<FileInfo?>("--json") { Description = "Write every round of every run to this JSON file." };
        var report = new Option<DirectoryInfo?>("--report") { Description = "Folder for comparison.md and eval-loss.png (with --compare)." };
        var privacy = new PrivacyOptions();
        var command = new Command("simulate", "Simulate federated fine-tuning with in-process clients driven through the algorithm interface.")
        {
            algorithm, compare, artifacts, data, format, test, clients, fraction, rounds, partition, alpha, seed, localSteps, microBatches, localLr, serverLr, seeds,
            epsilon, maxLength, evalExamples, generate, threads, device, json, report,
        };
        foreach (var o in privacy.All)
            command.Add(o);
        CommandAction.Set(command, parse =>
        {
            var entries = parse.GetValue(compare) is { } list
                ? list.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(PrivacyOptions.ParseEntry).ToList()
                : [(parse.GetValue(algorithm)!, parse.GetValue(privacy.Secure), parse.GetValue(privacy.Noise) is not null || parse.GetValue(privacy.Epsilon) is not null, (double?)null)];
            foreach (var (a, _, _, _) in entries)
            {
                if (!FederatedAlgorithms.Names.Contains(a))
                    throw new ArgumentException($"--compare: unknown algorithm '{a}' (expected {string.Join(", ", FederatedAlgorithms.Names)}).");
            }
            var runs = new List<SimulationOptions>();
            foreach (var (a, secure, dp, targetEpsilon) in entries)
            {
                var settings = FederatedAlgorithms.ReferenceSettings(a);
                if (Setting(parse.GetValue(localSteps), a, "--local-steps") is double t)
                    settings.LocalSteps = (int)t;
                if (Setting(parse.GetValue(microBatches), a, "--micro-batches") is double mb)
                    settings.MicroBatches = (int)mb;
                if (Setting(parse.GetValue(localLr), a, "--local-lr") is double lr)
                    settings.LocalLearningRate = lr;
                if (Setting(parse.GetValue(serverLr), a, "--server-lr") is double slr)
                    settings.ServerLearningRate = slr;
                if (Setting(parse.GetValue(seeds), a, "--seeds") is double k)
                    settings.CandidateSeeds = (int)k;
                if (Setting(parse.GetValue(epsilon), a, "--zo-eps") is double eps)
                    settings.ZerothOrderEpsilon = eps;
                settings.Validate();
                int clientCount = parse.GetValue(clients);
                double fractionValue = parse.GetValue(fraction);
                int perRound = Math.Max(1, (int)Math.Round(fractionValue * clientCount));
                var privateSettings = privacy.Build(parse, secure, dp, targetEpsilon, perRound, (double)perRound / clientCount, parse.GetValue(rounds));
                privateSettings?.Validate(a, settings.Weighting);
                string label = a + (secure ? "+secagg" : "") + (dp ? "+dp" + (targetEpsilon is { } te ? "@" + te.ToString(CultureInfo.InvariantCulture) : "") : "");
                var options = new SimulationOptions
                {
                    Label = label,
                    Privacy = privateSettings,
                    Algorithm = a,
                    Settings = settings,
                    Clients = parse.GetValue(clients),
                    Fraction = parse.GetValue(fraction),
                    Rounds = parse.GetValue(rounds),
                    Seed = parse.GetValue(seed),
                    Partition = parse.GetValue(partition) switch { "dirichlet" => PartitionScheme.Dirichlet, "category" => PartitionScheme.ByCategory, _ => PartitionScheme.Iid },
                    DirichletAlpha = parse.GetValue(alpha),
                    MaxLength = parse.GetValue(maxLength),
                    EvalExamples = parse.GetValue(evalExamples),
                    GenerateExamples = parse.GetValue(generate),
                    Session = new SessionSettings { IntraOpThreads = parse.GetValue(threads), Device = ExecutionDevice.Parse(parse.GetValue(device)!) },
                };
                runs.Add(options);
            }
            // Everything above is checked before the model and the data are loaded, so bad options fail at once.
            var package = ArtifactPackage.Open(parse.GetValue(artifacts)!.FullName);
            var tokenizer = Tokenizers.FromPackage(package);
            var (trainSet, testSet) = LoadData(parse.GetValue(data)!, parse.GetValue(test), (int)parse.GetValue(seed), parse.GetValue(format));
            var results = new List<SimulationResult>();
            foreach (var options in runs)
            {
                var settings = options.Settings;
                var privateSettings = options.Privacy;
                string label = options.Label!;
                AnsiConsole.MarkupLine($"[bold]{Markup.Escape(label)}[/]: {options.Clients} clients, {options.Fraction:P0} per round, {options.Rounds} rounds, T = {settings.LocalSteps}, eta = {settings.LocalLearningRate}");
                if (privateSettings?.SecureAggregation is { } sa)
                    AnsiConsole.MarkupLine($"  secure aggregation: threshold {sa.Threshold}, {(sa.Neighbours == 0 ? "every client" : sa.Neighbours + " neighbours")}");
                if (privateSettings?.DifferentialPrivacy is { } dpSettings)
                {
                    AnsiConsole.MarkupLine(string.Create(CultureInfo.InvariantCulture,
                        $"  differential privacy: z = {dpSettings.NoiseMultiplier:G4}, clip {dpSettings.ClipNorm:G4}{(dpSettings.AdaptiveClipping is null ? "" : " (adaptive)")}, {dpSettings.Placement.ToString().ToLowerInvariant()} noise, delta {dpSettings.Delta:G3}"));
                }
                results.Add(Simulator.Run(package, trainSet, testSet, options, tokenizer, r => Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"  round {r.Round,3}: eval loss {r.EvalLoss:F4}  Rouge-L {r.RougeL:F3}  train loss {r.TrainLoss:F3}  up {ComparisonReport.Bytes(r.BytesUpPerClient)}/client  down {ComparisonReport.Bytes(r.BytesDownPerClient)}  compute {r.ClientComputeSeconds:F2} s/client  coordinator {r.CoordinatorSeconds:F3} s{(r.Epsilon is { } e ? $"  epsilon {e:F2} (clip {r.ClipNorm:G3})" : "")}  {r.WallSeconds:F1} s"))));
            }
            if (parse.GetValue(json) is { } jsonFile)
            {
                var tmp = jsonFile.FullName + ".tmp";
                File.WriteAllText(tmp, JsonSerializer.Serialize(results.Select(r => new { algorithm = r.Algorithm, label = r.Label, privacy = r.Options.Privacy, fingerprint = r.FinalFingerprint, settings = r.Options.Settings, rounds = r.Rounds }), JsonOptions));
                File.Move(tmp, jsonFile.FullName, overwrite: true);
            }
            var markdown = ComparisonReport.Markdown(results);
            Console.WriteLine();
            Console.WriteLine(markdown);
            if (parse.GetValue(report) is { } dir)
            {
                Directory.CreateDirectory(dir.FullName);
                File.WriteAllText(Path.Combine(dir.FullName, "comparison.md"), markdown);
                ComparisonReport.Plot(results, Path.Combine(dir.FullName, "eval-loss.png"));
                AnsiConsole.MarkupLine($"wrote [bold]{Markup.Escape(Path.Combine(dir.FullName, "comparison.md"))}[/] and [bold]eval-loss.png[/]");
            }
            return 0;
        });
        return command;
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
        new("--format") { Description = "Data format: Auto (from the file), Alpaca, CodeAlpaca (category = programming language), Dolly, NaturalInstructions, Gsm8k.", DefaultValueFactory = _ => DataFormat.Auto };

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
