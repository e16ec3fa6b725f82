using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using Ferret.Core.Algorithms;
using Ferret.Core.Packets;
using Ferret.Core.Projection;
using Ferret.Core.Randomness;
using Ferret.Onnx.Artifacts;
using Ferret.Training.Devices;
using Ferret.Training.Optimizers;
using Ferret.Training.Runtime;
using Spectre.Console;

namespace Ferret.Cli.Commands;

/// <summary>
/// <c>ferret bench train</c>: tokens per second and peak memory of forward + backward + SGD through ONNX Runtime,
/// or (<c>--round</c>) of a whole Ferret local round: T steps of n_accum accumulated micro-batches on the device,
/// then the update projected block by block onto K seeds, as a client does it.
/// </summary>
internal static class BenchTrainCommand
{
    public static Command Create()
    {
        var artifacts = new Option<DirectoryInfo>("--artifacts") { Description = "Artifact package directory (ferret export).", Required = true };
        var batch = new Option<int>("--batch") { Description = "Sequences per micro-batch.", DefaultValueFactory = _ => 1 };
        var seq = new Option<int>("--seq") { Description = "Tokens per sequence.", DefaultValueFactory = _ => 128 };
        var steps = new Option<int>("--steps") { Description = "Timed training steps (without --round).", DefaultValueFactory = _ => 20 };
        var warmup = new Option<int>("--warmup") { Description = "Untimed steps first (session warm-up).", DefaultValueFactory = _ => 3 };
        var threads = new Option<int>("--threads") { Description = "ONNX Runtime intra-op threads (0: one per core).", DefaultValueFactory = _ => 0 };
        var optLevel = Choices.Create("--opt-level", "Graph optimisation.", "all", "none", "basic", "extended", "all");
        var device = new Option<string>("--device") { Description = "cpu, cuda or cuda:N.", DefaultValueFactory = _ => "cpu" };
        var profile = new Option<FileInfo?>("--profile") { Description = "Run ONNX Runtime's profiler, show where the time goes, and keep its chrome-trace JSON in this file." };
        var resident = new Option<bool?>("--resident") { Description = "Keep parameters, gradients and the SGD update in the provider's memory (default: on under CUDA and with --round)." };
        var tf32 = new Option<bool>("--tf32") { Description = "TensorFloat-32 matrix products on the GPU.", DefaultValueFactory = _ => true };
        var round = new Option<bool>("--round") { Description = "Time one whole Ferret local round (local steps x micro-batches, then the projection) instead of single steps." };
        var localSteps = new Option<int>("--local-steps") { Description = "With --round: optimizer steps T.", DefaultValueFactory = _ => 10 };
        var microBatches = new Option<int>("--micro-batches") { Description = "With --round: accumulated micro-batches per step.", DefaultValueFactory = _ => 4 };
        var seeds = new Option<int>("--seeds") { Description = "With --round: candidate seeds K of the projection.", DefaultValueFactory = _ => 200 };
        var cpuArena = new Option<bool>("--cpu-arena") { Description = "ONNX Runtime's CPU memory arena (off by default: freed tensors go back to the system)." };
        var json = new Option<bool>("--json") { Description = "Print one JSON object instead of a table." };
        var command = new Command("train", "Training throughput and peak memory (forward, backward, SGD; or a whole Ferret local round) of an exported model through ONNX Runtime.")
        {
            artifacts, batch, seq, steps, warmup, threads, optLevel, device, profile, resident, tf32, round, localSteps, microBatches, seeds, cpuArena, json,
        };
        CommandAction.Set(command, parse =>
        {
            var options = new Options(parse.GetRequiredValue(artifacts).FullName, Positive(parse.GetValue(batch), "--batch"),
                parse.GetValue(seq) is >= 2 and var s ? s : throw new ArgumentException($"--seq must be at least 2 (got {parse.GetValue(seq)})."),
                Positive(parse.GetValue(steps), "--steps"), NotNegative(parse.GetValue(warmup), "--warmup"), NotNegative(parse.GetValue(threads), "--threads"),
                parse.GetValue(optLevel)!, ExecutionDevice.Parse(parse.GetValue(device)!), parse.GetValue(profile)?.FullName, parse.GetValue(resident), parse.GetValue(tf32),
                parse.GetValue(round), Positive(parse.GetValue(localSteps), "--local-steps"), Positive(parse.GetValue(microBatches), "--micro-batches"),
                parse.GetValue(seeds) is >= 2 and <= 65536 and var k ? k : throw new ArgumentException($"--seeds must lie in 2..65536 (got {parse.GetValue(seeds)})."),
                parse.GetValue(cpuArena));
            if (options.Round && options.Resident == false)
                throw new ArgumentException("--round runs the resident loop a client runs; drop --resident false.");
            var result = Run(options);
            Report(result, options, parse.GetValue(json), parse.InvocationConfiguration.Output);
            return 0;
        });
        return command;
    }

    private static int Positive(int value, string name) => value > 0 ? value : throw new ArgumentException($"{name} must be positive (got {value}).");

    private static int NotNegative(int value, string name) => value >= 0 ? value : throw new ArgumentException($"{name} must not be negative (got {value}).");

    private sealed record Options(string Directory, int Batch, int Seq, int Steps, int Warmup, int Threads, string OptLevel, ExecutionDevice Device,
        string? Profile, bool? Resident, bool Tf32, bool Round, int LocalSteps, int MicroBatches, int Seeds, bool CpuArena);

    private sealed record Result(long Parameters, bool Resident, string Location, double TokensPerSecond, double StepMilliseconds, float FinalLoss,
        long PeakRss, long? PeakDevice, double? LoadSeconds, double? TrainSeconds, double? ProjectionSeconds, long? PacketBytes, IReadOnlyList<OperatorTime> Ops, string Recompute = "none");

    private static Result Run(Options o)
    {
        if (o.Profile is not null && Directory.Exists(o.Profile))
            throw new ArgumentException($"--profile '{o.Profile}' is a folder; name the file the profile goes to.");
        // ONNX Runtime writes profiles under a prefix of its own choosing: they go to a private folder, the one asked for is moved out, the rest removed.
        string? scratch = o.Profile is null ? null : Directory.CreateTempSubdirectory("ferret-profile-").FullName;
        try
        {
            return Run(o, scratch is null ? null : Path.Combine(scratch, "train"));
        }
        finally
        {
            if (scratch is not null)
                Directory.Delete(scratch, recursive: true);
        }
    }

    /// <summary>The profiler's per-operator shares; its chrome-trace file moves to where --profile said.</summary>
    private static IReadOnlyList<OperatorTime> KeepProfile(string written, string? profile)
    {
        if (profile is null)
            return [];
        var ops = OrtProfile.ByOperator(written);
        Directory.CreateDirectory(Path.GetDirectoryName(profile)!);
        File.Move(written, profile, overwrite: true);
        return ops;
    }

    private static Result Run(Options o, string? profilePrefix)
    {
        var package = ArtifactPackage.Open(o.Directory);
        var settings = new SessionSettings
        {
            Device = o.Device,
            IntraOpThreads = o.Threads,
            OptimizationLevel = SessionSettings.ParseOptimizationLevel(o.OptLevel),
            ProfilePrefix = profilePrefix,
            ResidentParameters = o.Resident ?? (o.Round || o.Device.IsCuda),
            Tf32 = o.Tf32,
            CpuArena = o.CpuArena,
        };
        var data = RandomBatch(o.Batch, o.Seq, package.Manifest.Tokenizer.VocabSize, seed: 1234);
        using var monitor = new DeviceMemoryMonitor(o.Device);
        return settings.ResidentParameters == true ? Resident(package, settings, data, o, monitor) : Host(package, settings, data, o, monitor);
    }

    /// <summary>Host buffers: the flat parameters and gradient in host memory, SGD on the host.</summary>
    private static Result Host(ArtifactPackage package, SessionSettings settings, TokenBatch data, Options o, DeviceMemoryMonitor monitor)
    {
        using var trainer = new OnnxTrainer(package.Layout, package.TrainGraphPath, null, settings);
        package.LoadParameters(trainer.Parameters);
        var sgd = new Sgd(1e-4f);
        float loss = 0;
        for (int i = 0; i < o.Warmup; i++)
            loss = trainer.ForwardBackward(data);
        var timer = Stopwatch.StartNew();
        for (int i = 0; i < o.Steps; i++)
        {
            loss = trainer.ForwardBackward(data);
            sgd.Step(trainer.Parameters, trainer.Gradients);
        }
        timer.Stop();
        Finite(loss);
        var ops = o.Profile is null ? [] : KeepProfile(trainer.EndProfiling(), o.Profile);
        return new Result(package.Layout.TotalLength, false, "host", (double)data.TokenCount * o.Steps / timer.Elapsed.TotalSeconds,
            timer.Elapsed.TotalMilliseconds / o.Steps, loss, DeviceMemoryMonitor.PeakHostBytes, monitor.PeakDeviceBytes, null, null, null, null, ops);
    }

    /// <summary>Resident buffers straight from the package (no host copy of the model unless a round needs its start).</summary>
    private static Result Resident(ArtifactPackage package, SessionSettings settings, TokenBatch data, Options o, DeviceMemoryMonitor monitor)
    {
        var load = Stopwatch.StartNew();
        using var resident = ResidentTraining.Open(package, settings, withEvaluation: false);
        using var start = o.Round ? HostParameters.Load(package) : null;
        if (start is not null)
        {
            for (int i = 0; i < package.Layout.Tensors.Count; i++)
            {
                var t = package.Layout.Tensors[i];
                resident.Upload(i, start.Slice(t.Offset, checked((int)t.Length)));
            }
        }
        else
        {
            resident.Load(package);
        }
        load.Stop();
        float loss = 0;
        for (int i = 0; i < o.Warmup; i++)
        {
            loss = resident.ForwardBackward(data);
            resident.Step(0f);
        }
        if (start is not null)
        {
            // Warm-up steps at rate 0 leave the parameters where they started; the round begins there.
            var timer = Stopwatch.StartNew();
            for (int step = 0; step < o.LocalSteps; step++)
            {
                for (int m = 0; m < o.MicroBatches; m++)
                    loss = resident.ForwardBackward(data);
                resident.Step(1e-4f / o.MicroBatches);
            }
            double train = timer.Elapsed.TotalSeconds;
            monitor.Sample();
            var project = Stopwatch.StartNew();
            using var update = new ResidentUpdate(resident, start, package.Layout);
            var gammas = Projector.Project(update, package.Blocks, SharedRandomness.CandidateSeeds(42, o.Seeds), BasisDistribution.Uniform, new Random(1));
            double projection = project.Elapsed.TotalSeconds;
            Finite(loss);
            var packet = Wire.Serialize<ClientUpdate>(new FerretUpdate
            {
                ExperimentId = "bench",
                Round = 1,
                SampleCount = o.LocalSteps * o.MicroBatches,
                SeedIndices = gammas.SeedIndices,
                Blocks = gammas.Blocks,
                Gammas = gammas.Values,
            });
            int passes = o.LocalSteps * o.MicroBatches;
            var ops = o.Profile is null ? [] : KeepProfile(resident.EndProfiling(), o.Profile);
            return new Result(package.Layout.TotalLength, true, resident.Location, (double)data.TokenCount * passes / train, train * 1000 / o.LocalSteps, loss,
                DeviceMemoryMonitor.PeakHostBytes, monitor.PeakDeviceBytes, load.Elapsed.TotalSeconds, train, projection, packet.LongLength, ops, Recompute: package.Manifest.Recompute?.Mode ?? "none");
        }
        var steps = Stopwatch.StartNew();
        for (int i = 0; i < o.Steps; i++)
        {
            loss = resident.ForwardBackward(data);
            resident.Step(1e-4f);
        }
        steps.Stop();
        Finite(loss);
        var profile = o.Profile is null ? [] : KeepProfile(resident.EndProfiling(), o.Profile);
        return new Result(package.Layout.TotalLength, true, resident.Location, (double)data.TokenCount * o.Steps / steps.Elapsed.TotalSeconds,
            steps.Elapsed.TotalMilliseconds / o.Steps, loss, DeviceMemoryMonitor.PeakHostBytes, monitor.PeakDeviceBytes, load.Elapsed.TotalSeconds, null, null, null, profile, Recompute: package.Manifest.Recompute?.Mode ?? "none");
    }

    private static void Finite(float loss)
    {
        if (!float.IsFinite(loss))
            throw new InvalidDataException($"The training loss became {loss}; the artifact or the batch is broken.");
    }

    private static void Report(Result r, Options o, bool json, TextWriter output)
    {
        if (json)
        {
            var result = new Dictionary<string, object?>
            {
                ["tokens_per_s"] = Math.Round(r.TokensPerSecond, 1),
                ["peak_rss_bytes"] = r.PeakRss,
                ["peak_device_bytes"] = r.PeakDevice,
                ["step_ms"] = Math.Round(r.StepMilliseconds, 3),
                ["batch"] = o.Batch,
                ["seq"] = o.Seq,
                ["steps"] = o.Round ? o.LocalSteps : o.Steps,
                ["parameters"] = r.Parameters,
                ["opt_level"] = o.OptLevel,
                ["device"] = o.Device.ToString(),
                ["tf32"] = o.Device.IsCuda && o.Tf32,
                ["resident"] = r.Resident,
                ["recompute"] = r.Recompute,
                ["threads"] = o.Threads,
                ["final_loss"] = r.FinalLoss,
            };
            if (o.Round)
            {
                result["micro_batches"] = o.MicroBatches;
                result["seeds"] = o.Seeds;
                result["load_s"] = Math.Round(r.LoadSeconds ?? 0, 3);
                result["train_s"] = Math.Round(r.TrainSeconds ?? 0, 3);
                result["projection_s"] = Math.Round(r.ProjectionSeconds ?? 0, 3);
                result["packet_bytes"] = r.PacketBytes;
            }
            if (r.Ops.Count > 0)
                result["op_share"] = r.Ops.Take(12).ToDictionary(x => x.OpType, x => Math.Round(x.Share, 4));
            if (o.Profile is not null)
                result["profile"] = o.Profile;
            output.WriteLine(CliJson.Serialize(result));
            return;
        }
        static string MiB(long bytes) => string.Create(CultureInfo.InvariantCulture, $"{bytes / (1024.0 * 1024.0):N0} MiB");
        var table = new Table().AddColumn("measure").AddColumn(new TableColumn("value").RightAligned());
        table.AddRow("tokens/s", r.TokensPerSecond.ToString("N0", CultureInfo.InvariantCulture));
        table.AddRow("step", $"{r.StepMilliseconds.ToString("F1", CultureInfo.InvariantCulture)} ms");
        if (o.Round)
        {
            table.AddRow("round", string.Create(CultureInfo.InvariantCulture,
                $"{o.LocalSteps} steps x {o.MicroBatches} micro-batches: {r.TrainSeconds:F2} s training, {r.ProjectionSeconds:F2} s projection (K = {o.Seeds})"));
            table.AddRow("packet", $"{r.PacketBytes:N0} bytes");
        }
        table.AddRow("peak RSS", MiB(r.PeakRss));
        if (r.PeakDevice is long d)
            table.AddRow("peak GPU memory", MiB(d));
        table.AddRow("parameters", r.Parameters.ToString("N0", CultureInfo.InvariantCulture));
        table.AddRow("batch x seq", $"{o.Batch} x {o.Seq}");
        table.AddRow("graph optimisation", o.OptLevel);
        table.AddRow("device", o.Device + (r.Resident ? $" (resident buffers in {r.Location} memory)" : " (host buffers)") + (o.Device.IsCuda ? o.Tf32 ? ", TF32" : ", full float32" : ""));
        table.AddRow("activation recompute", r.Recompute);
        table.AddRow("final loss", r.FinalLoss.ToString("F4", CultureInfo.InvariantCulture));
        AnsiConsole.Write(table);
        if (r.Ops.Count > 0)
        {
            var opTable = new Table().Title("where the time goes (ONNX Runtime profiler)")
                .AddColumn("operator").AddColumn(new TableColumn("share").RightAligned())
                .AddColumn(new TableColumn("ms/run").RightAligned()).AddColumn(new TableColumn("calls/run").RightAligned());
            int runs = o.Warmup + (o.Round ? o.LocalSteps * o.MicroBatches : o.Steps);
            foreach (var x in r.Ops.Take(15))
            {
                opTable.AddRow(x.OpType, $"{x.Share:P1}", (x.Microseconds / 1000.0 / runs).ToString("F2", CultureInfo.InvariantCulture),
                    (x.Calls / (double)runs).ToString("F0", CultureInfo.InvariantCulture));
            }
            AnsiConsole.Write(opTable);
        }
        if (o.Profile is not null)
            AnsiConsole.WriteLine($"profile written to {o.Profile} (chrome-trace JSON, for a trace viewer)");
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
