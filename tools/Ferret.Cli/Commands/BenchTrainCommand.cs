using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Ferret.Onnx.Artifacts;
using Ferret.Training.Optimizers;
using Ferret.Training.Runtime;
using Spectre.Console;

namespace Ferret.Cli.Commands;

/// <summary><c>ferret bench train</c>: tokens per second of forward + backward + SGD through ONNX Runtime.</summary>
internal static class BenchTrainCommand
{
    public static Command Create()
    {
        var artifacts = new Option<DirectoryInfo>("--artifacts") { Description = "Artifact package directory (ferret export).", Required = true };
        var batch = new Option<int>("--batch") { Description = "Sequences per step.", DefaultValueFactory = _ => 1 };
        var seq = new Option<int>("--seq") { Description = "Tokens per sequence.", DefaultValueFactory = _ => 128 };
        var steps = new Option<int>("--steps") { Description = "Timed training steps.", DefaultValueFactory = _ => 20 };
        var warmup = new Option<int>("--warmup") { Description = "Untimed steps first (session warm-up).", DefaultValueFactory = _ => 3 };
        var threads = new Option<int>("--threads") { Description = "ONNX Runtime intra-op threads (0: one per core).", DefaultValueFactory = _ => 0 };
        var optLevel = new Option<string>("--opt-level") { Description = "Graph optimisation: none, basic, extended, all.", DefaultValueFactory = _ => "all" };
        var device = new Option<string>("--device") { Description = "cpu, cuda or cuda:N.", DefaultValueFactory = _ => "cpu" };
        var profile = new Option<bool>("--profile") { Description = "Run ONNX Runtime's profiler and show where the time goes." };
        var resident = new Option<bool?>("--resident") { Description = "Keep parameters, gradients and the SGD update in the provider's memory (default: on under CUDA)." };
        var json = new Option<bool>("--json") { Description = "Print one JSON object instead of a table." };
        var command = new Command("train", "Training-step throughput (forward, backward, SGD update) of an exported model through ONNX Runtime.")
        {
            artifacts, batch, seq, steps, warmup, threads, optLevel, device, profile, resident, json,
        };
        CommandAction.Set(command, parse => Run(
            parse.GetRequiredValue(artifacts).FullName, parse.GetValue(batch), parse.GetValue(seq), parse.GetValue(steps),
            parse.GetValue(warmup), parse.GetValue(threads), parse.GetValue(optLevel)!, parse.GetValue(device)!,
            parse.GetValue(profile), parse.GetValue(resident), parse.GetValue(json)));
        return command;
    }

    private static int Run(string dir, int batch, int seq, int steps, int warmup, int threads, string optLevel, string device, bool profile, bool? resident, bool json)
    {
        if (batch <= 0)
            throw new ArgumentException($"--batch must be positive (got {batch}).");
        if (seq < 2)
            throw new ArgumentException($"--seq must be at least 2 (got {seq}).");
        if (steps <= 0)
            throw new ArgumentException($"--steps must be positive (got {steps}).");
        if (warmup < 0)
            throw new ArgumentException($"--warmup must not be negative (got {warmup}).");
        if (threads < 0)
            throw new ArgumentException($"--threads must not be negative (got {threads}).");

        var package = ArtifactPackage.Open(dir);
        string? profilePrefix = profile ? Path.Combine(Path.GetTempPath(), $"ferret-bench-train-{Environment.ProcessId}") : null;
        var settings = new SessionSettings
        {
            Device = ExecutionDevice.Parse(device),
            IntraOpThreads = threads,
            OptimizationLevel = SessionSettings.ParseOptimizationLevel(optLevel),
            ProfilePrefix = profilePrefix,
            ResidentParameters = resident,
        };
        using var trainer = new OnnxTrainer(package.Layout, package.TrainGraphPath, null, settings);
        package.LoadParameters(trainer.Parameters);
        var optimizer = new Sgd(1e-4f);
        var data = RandomBatch(batch, seq, package.Manifest.Tokenizer.VocabSize, seed: 1234);

        float loss = 0;
        trainer.Resident?.Load(trainer.Parameters);
        for (int i = 0; i < warmup; i++)
            loss = Step(trainer, optimizer, data);
        var timer = Stopwatch.StartNew();
        for (int i = 0; i < steps; i++)
            loss = Step(trainer, optimizer, data);
        timer.Stop();
        trainer.Resident?.Store(trainer.Parameters);
        if (!float.IsFinite(loss))
            throw new InvalidDataException($"The training loss became {loss}; the artifact or the batch is broken.");

        double tokensPerSecond = (double)batch * seq * steps / timer.Elapsed.TotalSeconds;
        long peakRss = Process.GetCurrentProcess().PeakWorkingSet64;
        var ops = profilePrefix is null ? [] : OrtProfile.ByOperator(trainer.EndProfiling());

        if (json)
        {
            var result = new Dictionary<string, object>
            {
                ["tokens_per_s"] = Math.Round(tokensPerSecond, 1),
                ["peak_rss_bytes"] = peakRss,
                ["step_ms"] = Math.Round(timer.Elapsed.TotalMilliseconds / steps, 3),
                ["batch"] = batch,
                ["seq"] = seq,
                ["steps"] = steps,
                ["parameters"] = package.Layout.TotalLength,
                ["opt_level"] = optLevel,
                ["device"] = settings.Device.ToString(),
                ["resident"] = trainer.Resident is not null,
                ["recompute"] = trainer.Resident is not null ? package.Manifest.Recompute?.Mode ?? "none" : "none",
                ["threads"] = threads,
                ["final_loss"] = loss,
            };
            if (ops.Count > 0)
                result["op_share"] = ops.Take(12).ToDictionary(o => o.OpType, o => Math.Round(o.Share, 4));
            Console.WriteLine(JsonSerializer.Serialize(result));
            return 0;
        }

        var table = new Table().AddColumn("measure").AddColumn(new TableColumn("value").RightAligned());
        table.AddRow("tokens/s", tokensPerSecond.ToString("N0", CultureInfo.InvariantCulture));
        table.AddRow("step", $"{timer.Elapsed.TotalMilliseconds / steps:F1} ms");
        table.AddRow("peak RSS", $"{peakRss / (1024.0 * 1024.0):F0} MiB");
        table.AddRow("parameters", package.Layout.TotalLength.ToString("N0", CultureInfo.InvariantCulture));
        table.AddRow("batch x seq", $"{batch} x {seq}");
        table.AddRow("graph optimisation", optLevel);
        table.AddRow("device", settings.Device.ToString() + (trainer.Resident is { } r ? $" (resident buffers in {r.Location} memory)" : " (host buffers)"));
        table.AddRow("activation recompute", trainer.Resident is not null ? package.Manifest.Recompute?.Mode ?? "none" : "none" + (package.Manifest.Recompute is null ? "" : " (needs --resident true)"));
        table.AddRow("final loss", loss.ToString("F4", CultureInfo.InvariantCulture));
        AnsiConsole.Write(table);
        if (ops.Count > 0)
        {
            var opTable = new Table().Title("where the time goes (ONNX Runtime profiler)")
                .AddColumn("operator").AddColumn(new TableColumn("share").RightAligned())
                .AddColumn(new TableColumn("ms/step").RightAligned()).AddColumn(new TableColumn("calls/step").RightAligned());
            int runs = warmup + steps;
            foreach (var o in ops.Take(15))
            {
                opTable.AddRow(o.OpType, $"{o.Share:P1}", (o.Microseconds / 1000.0 / runs).ToString("F2", CultureInfo.InvariantCulture),
                    (o.Calls / (double)runs).ToString("F0", CultureInfo.InvariantCulture));
            }
            AnsiConsole.Write(opTable);
        }
        return 0;
    }

    private static float Step(OnnxTrainer trainer, Sgd optimizer, TokenBatch batch)
    {
        if (trainer.Resident is { } resident)
        {
            float residentLoss = resident.ForwardBackward(batch);
            resident.Step(optimizer.LearningRate);
            return residentLoss;
        }
        float loss = trainer.ForwardBackward(batch);
        optimizer.Step(trainer.Parameters, trainer.Gradients);
        return loss;
    }

    private static TokenBatch RandomBatch(int batch, int seq, int vocab, int seed)
    {
        var rng = new Random(seed);
        var ids = new long[batch * seq];
        for (int i = 0; i < ids.Length; i++)
            ids[i] = rng.Next(vocab);
        var mask = new long[ids.Length];
        Array.Fill(mask, 1L);
        return new TokenBatch(batch, seq, ids, mask, (long[])ids.Clone());
    }
}
