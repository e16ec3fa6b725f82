using System.CommandLine;
using System.Globalization;
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
    public static Command Create()
    {
        var algorithm = Choices.Create("--algorithm", "The algorithm (one run; --compare runs several).", "ferret", [.. FederatedAlgorithms.Names]);
        var compare = new Option<string?>("--compare") { Description = "Several algorithms on the identical setup, e.g. ferret,fedkseed,fedzo,fedavg." };
        var artifacts = new Option<DirectoryInfo>("--artifacts") { Description = "Artifact package (ferret export).", Required = true };
        var data = new Option<string>("--data") { Description = "Training data: a file (Alpaca/Dolly/GSM8K JSON or JSONL), a Natural Instructions folder, or a folder with train.jsonl and test.jsonl.", Required = true };
        var format = FormatOption();
        var test = new Option<string?>("--test") { Description = "Held-out data file (default: test.jsonl beside the training data, else 10 % held out)." };
        var clients = new Option<int>("--clients") { Description = "Clients N.", DefaultValueFactory = _ => 20 };
        var fraction = new Option<double>("--fraction") { Description = "Fraction m of clients sampled per round.", DefaultValueFactory = _ => 0.25 };
        var rounds = new Option<int>("--rounds") { Description = "Rounds R.", DefaultValueFactory = _ => 12 };
        var partition = Choices.Create("--partition", "How the data is split across clients.", "iid", "iid", "dirichlet", "category");
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
        var json = new Option<FileInfo?>("--json") { Description = "Write every round of every run to this JSON file (snake_case keys)." };
        var report = new Option<DirectoryInfo?>("--report") { Description = "Folder for comparison.md and eval-loss.png, for one algorithm or several (--compare); nothing is written without it." };
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
            // Everything is checked before anything starts: the first run must not end in a refusal of the second.
            int nClients = AtLeast(parse.GetValue(clients), 1, "--clients");
            double m = parse.GetValue(fraction);
            if (!(m is > 0 and <= 1))
                throw new ArgumentException($"--fraction {m.ToString(CultureInfo.InvariantCulture)} must lie in (0, 1].");
            int nRounds = AtLeast(parse.GetValue(rounds), 1, "--rounds");
            double a = parse.GetValue(alpha);
            if (!(a > 0) || double.IsInfinity(a))
                throw new ArgumentException($"--alpha {a.ToString(CultureInfo.InvariantCulture)} must be positive.");
            int length = AtLeast(parse.GetValue(maxLength), 4, "--max-length");
            int nEval = AtLeast(parse.GetValue(evalExamples), 1, "--eval-examples");
            int nGenerate = AtLeast(parse.GetValue(generate), 0, "--generate-examples");
            int nThreads = AtLeast(parse.GetValue(threads), 0, "--threads");
            var executionDevice = ExecutionDevice.Parse(parse.GetValue(device)!);
            if (parse.GetValue(compare) is not null && parse.GetResult(algorithm) is { Implicit: false })
                throw new ArgumentException("Pass --algorithm NAME for one run or --compare a,b,... for several, not both.");
            // A --compare entry is an algorithm with optional privacy parts: ferret, ferret+secagg, ferret+dp@4.
            var entries = parse.GetValue(compare) is { } list
                ? list.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(x => PrivacyOptions.ParseEntry(x.ToLowerInvariant())).ToList()
                : [(parse.GetValue(algorithm)!, parse.GetValue(privacy.Secure), parse.GetValue(privacy.Noise) is not null || parse.GetValue(privacy.Epsilon) is not null, (double?)null)];
            foreach (var (name, _, _, _) in entries)
            {
                if (!FederatedAlgorithms.Names.Contains(name))
                    throw new ArgumentException($"--compare: unknown algorithm '{name}' (expected {string.Join(", ", FederatedAlgorithms.Names)}).");
            }
            var labels = entries.Select(e => Label(e.Algorithm, e.Secure, e.Private, e.TargetEpsilon)).ToList();
            if (labels.Count == 0 || labels.Distinct().Count() != labels.Count)
                throw new ArgumentException($"--compare '{parse.GetValue(compare)}' must name each entry once.");
            // Privacy is checked before the model is loaded (again below, against the package's settings).
            int perRound = Math.Max(1, (int)Math.Round(m * nClients));
            foreach (var (name, secure, dp, targetEpsilon) in entries)
                privacy.Build(parse, secure, dp, targetEpsilon, perRound, (double)perRound / nClients, nRounds)?.Validate(name, FederatedAlgorithms.ReferenceSettings(name).Weighting);
            var package = ArtifactPackage.Open(parse.GetValue(artifacts)!.FullName);
            var runs = new List<SimulationOptions>();
            foreach (var (name, secure, dp, targetEpsilon) in entries)
            {
                // The package's recommendation first (its manifest), then what the command line says.
                var settings = package.Manifest.SettingsFor(name);
                if (Setting(parse.GetValue(localSteps), name, "--local-steps") is double t)
                    settings.LocalSteps = WholeNumber(t, "--local-steps");
                if (Setting(parse.GetValue(microBatches), name, "--micro-batches") is double mb)
                    settings.MicroBatches = WholeNumber(mb, "--micro-batches");
                if (Setting(parse.GetValue(localLr), name, "--local-lr") is double lr)
                    settings.LocalLearningRate = lr;
                if (Setting(parse.GetValue(serverLr), name, "--server-lr") is double slr)
                    settings.ServerLearningRate = slr;
                if (Setting(parse.GetValue(seeds), name, "--seeds") is double k)
                    settings.CandidateSeeds = WholeNumber(k, "--seeds");
                if (Setting(parse.GetValue(epsilon), name, "--zo-eps") is double eps)
                    settings.ZerothOrderEpsilon = eps;
                ValidateInUsersWords(settings, name);
                var privateSettings = privacy.Build(parse, secure, dp, targetEpsilon, perRound, (double)perRound / nClients, nRounds);
                privateSettings?.Validate(name, settings.Weighting);
                runs.Add(new SimulationOptions
                {
                    Label = Label(name, secure, dp, targetEpsilon),
                    Privacy = privateSettings,
                    Algorithm = name,
                    Settings = settings,
                    Clients = nClients,
                    Fraction = m,
                    Rounds = nRounds,
                    Seed = parse.GetValue(seed),
                    Partition = parse.GetValue(partition) switch { "dirichlet" => PartitionScheme.Dirichlet, "category" => PartitionScheme.ByCategory, _ => PartitionScheme.Iid },
                    DirichletAlpha = a,
                    MaxLength = length,
                    EvalExamples = nEval,
                    GenerateExamples = nGenerate,
                    Session = new SessionSettings { IntraOpThreads = nThreads, Device = executionDevice },
                });
            }
            var jsonFile = parse.GetValue(json)?.FullName;
            var reportDir = parse.GetValue(report)?.FullName;
            // Where results go is settled before the runs, not after them.
            if (jsonFile is not null)
            {
                if (Directory.Exists(jsonFile))
                    throw new IOException($"--json '{jsonFile}' is a folder; name a file.");
                Directory.CreateDirectory(Path.GetDirectoryName(jsonFile)!);
            }
            if (reportDir is not null)
            {
                if (File.Exists(reportDir))
                    throw new IOException($"--report '{reportDir}' is a file; name a folder.");
                Directory.CreateDirectory(reportDir);
            }
            var tokenizer = Tokenizers.FromPackage(package);
            var (trainSet, testSet) = LoadData(parse.GetValue(data)!, parse.GetValue(test), (int)parse.GetValue(seed), parse.GetValue(format));
            if (trainSet.Count < nClients)
                throw new ArgumentException($"--clients {nClients} is more than the {trainSet.Count} training examples.");

            var results = new List<SimulationResult>();
            foreach (var options in runs)
            {
                AnsiConsole.MarkupLine(Markup.Escape($"{SettingsLine.Of(options.Label ?? options.Algorithm, options.Settings)}; {options.Clients} clients, {options.Fraction.ToString("P0", CultureInfo.InvariantCulture)} per round, {options.Rounds} rounds, {options.Partition.ToString().ToLowerInvariant()} split"));
                if (options.Privacy?.SecureAggregation is { } sa)
                    AnsiConsole.MarkupLine(Markup.Escape($"  secure aggregation: threshold {sa.Threshold}, {(sa.Neighbours == 0 ? "every client" : sa.Neighbours + " neighbours")}"));
                if (options.Privacy?.DifferentialPrivacy is { } dpSettings)
                {
                    AnsiConsole.MarkupLine(Markup.Escape(string.Create(CultureInfo.InvariantCulture,
                        $"  differential privacy: z = {dpSettings.NoiseMultiplier:G4}, clip {dpSettings.ClipNorm:G4}{(dpSettings.AdaptiveClipping is null ? "" : " (adaptive)")}, {dpSettings.Placement.ToString().ToLowerInvariant()} noise, delta {dpSettings.Delta:G3}")));
                }
                results.Add(Simulator.Run(package, trainSet, testSet, options, tokenizer, r => AnsiConsole.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"  round {r.Round,3}: eval loss {r.EvalLoss:F4}  Rouge-L {r.RougeL:F3}  {(r.Round == 0 ? "(before training)" : $"train loss {r.TrainLoss:F3}  up {ComparisonReport.Bytes(r.BytesUpPerClient)}/client  down {ComparisonReport.Bytes(r.BytesDownPerClient)}  compute {r.ClientComputeSeconds:F2} s/client  coordinator {r.CoordinatorSeconds:F3} s{(r.Epsilon is { } e ? $"  epsilon {e:F2} (clip {r.ClipNorm:G3})" : "")}  {r.WallSeconds:F1} s")}"))));
            }
            var markdown = ComparisonReport.Markdown(results);
            AnsiConsole.WriteLine();
            AnsiConsole.WriteLine(markdown);
            // One rule: files are written where --json and --report say, for one algorithm or several, and nowhere else.
            if (jsonFile is not null)
            {
                var tmp = jsonFile + ".tmp";
                File.WriteAllText(tmp, CliJson.Serialize(results.Select(r => new { algorithm = r.Algorithm, label = r.Label, privacy = r.Options.Privacy, fingerprint = r.FinalFingerprint, settings = r.Options.Settings, rounds = r.Rounds }), indented: true));
                File.Move(tmp, jsonFile, overwrite: true);
                AnsiConsole.WriteLine($"wrote {jsonFile}");
            }
            if (reportDir is not null)
            {
                Directory.CreateDirectory(reportDir);
                File.WriteAllText(Path.Combine(reportDir, "comparison.md"), markdown);
                ComparisonReport.Plot(results, Path.Combine(reportDir, "eval-loss.png"), ComparisonReport.Subtitle(package, trainSet.Count, testSet.Count, runs[0]));
                AnsiConsole.WriteLine($"wrote {Path.Combine(reportDir, "comparison.md")} and {Path.Combine(reportDir, "eval-loss.png")}");
            }
            return 0;
        });
        return command;
    }

    /// <summary>What a run is called in the report: the algorithm and its privacy (ferret+secagg+dp@4).</summary>
    private static string Label(string algorithm, bool secure, bool dp, double? targetEpsilon) =>
        algorithm + (secure ? "+secagg" : "") + (dp ? "+dp" + (targetEpsilon is { } te ? "@" + te.ToString(CultureInfo.InvariantCulture) : "") : "");

    private static int AtLeast(int value, int least, string option) =>
        value >= least ? value : throw new ArgumentException($"{option} must be at least {least} (got {value}).");

    private static int WholeNumber(double value, string option) =>
        value == Math.Floor(value) && value is >= 0 and <= int.MaxValue ? (int)value : throw new ArgumentException($"{option}: {value.ToString(CultureInfo.InvariantCulture)} is not a whole number.");

    /// <summary>The settings' own checks, with the option that sets each field named instead of the field.</summary>
    private static void ValidateInUsersWords(AlgorithmSettings settings, string algorithm)
    {
        try
        {
            settings.Validate();
        }
        catch (ArgumentException e)
        {
            var message = e.Message;
            foreach (var (field, option) in OptionOf)
                message = message.Replace($"Setting '{field}'", $"{option} for {algorithm}", StringComparison.Ordinal);
            throw new ArgumentException(message, e);
        }
    }

    private static readonly (string Field, string Option)[] OptionOf =
    [
        (nameof(AlgorithmSettings.LocalSteps), "--local-steps"), (nameof(AlgorithmSettings.MicroBatches), "--micro-batches"),
        (nameof(AlgorithmSettings.LocalLearningRate), "--local-lr"), (nameof(AlgorithmSettings.ServerLearningRate), "--server-lr"),
        (nameof(AlgorithmSettings.CandidateSeeds), "--seeds"), (nameof(AlgorithmSettings.ZerothOrderEpsilon), "--zo-eps"),
    ];

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
        Choices.Enum("--format", "Data format: auto (from the file), alpaca, codealpaca (category = programming language), dolly, naturalinstructions, gsm8k.", DataFormat.Auto);

    internal static (List<InstructionExample> Train, List<InstructionExample> Test) LoadData(string data, string? test, int seed, DataFormat format = DataFormat.Auto)
    {
        string trainPath = data;
        if (Directory.Exists(data) && File.Exists(Path.Combine(data, "train.jsonl")))
        {
            trainPath = Path.Combine(data, "train.jsonl");
            test ??= File.Exists(Path.Combine(data, "test.jsonl")) ? Path.Combine(data, "test.jsonl") : null;
        }
        var trainSet = Read(trainPath, format, "training");
        if (test is not null)
        {
            var held = Read(test, format, "held-out");
            return (trainSet, held);
        }
        var split = Partitioner.HoldOutFraction(trainSet, 0.1, seed);
        AnsiConsole.WriteLine($"held out 10 %: {split.Train.Count} train, {split.Test.Count} test examples");
        return split;
    }

    private static List<InstructionExample> Read(string path, DataFormat format, string role)
    {
        var set = InstructionData.Read(path, format);
        AnsiConsole.WriteLine($"{role} data: {Path.GetFullPath(path)}, {set.Format.ToString().ToLowerInvariant()} format{(format == DataFormat.Auto ? " (detected)" : "")}, {set.Examples.Count} examples{(set.Problems.Count > 0 ? $", {set.Problems.Count} malformed records skipped" : "")}");
        foreach (var p in set.Problems.Take(5))
            Terminal.Error.MarkupLine($"[yellow]skipped[/] {Markup.Escape(p)}");
        if (set.Problems.Count > 5)
            Terminal.Error.MarkupLine($"[yellow]skipped {set.Problems.Count - 5} more malformed records[/]");
        if (set.Examples.Count == 0)
            throw new InvalidDataException($"'{path}' holds no usable examples.");
        return [.. set.Examples];
    }
}
