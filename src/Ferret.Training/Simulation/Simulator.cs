using System.Diagnostics;
using Ferret.Core.Algorithms;
using Ferret.Core.Packets;
using Ferret.Core.Parameters;
using Ferret.Core.Privacy;
using Ferret.Core.Randomness;
using Ferret.Onnx.Artifacts;
using Ferret.Training.Data;
using Ferret.Training.Evaluation;
using Ferret.Training.Runtime;
using Ferret.Training.Tokenization;

namespace Ferret.Training.Simulation;

/// <summary>A simulated federation: clients, sampling, data split, evaluation.</summary>
public sealed record SimulationOptions
{
    public string Algorithm { get; init; } = FederatedAlgorithms.Ferret;

    public AlgorithmSettings Settings { get; init; } = FederatedAlgorithms.ReferenceSettings(FederatedAlgorithms.Ferret);

    public int Clients { get; init; } = 20;

    public double Fraction { get; init; } = 0.25;

    public int Rounds { get; init; } = 12;

    public ulong Seed { get; init; } = 42;

    public PartitionScheme Partition { get; init; } = PartitionScheme.Iid;

    public double DirichletAlpha { get; init; } = 0.5;

    public int MaxLength { get; init; } = 320;

    /// <summary>Held-out examples scored for eval loss each round.</summary>
    public int EvalExamples { get; init; } = 64;

    /// <summary>Held-out examples decoded for Rouge-L each round (0 to skip generation).</summary>
    public int GenerateExamples { get; init; } = 16;

    public int MaxNewTokens { get; init; } = 24;

    public SessionSettings Session { get; init; } = new();

    /// <summary>Secure aggregation and differential privacy of the run (Ferret only); null aggregates packets in the clear.</summary>
    public PrivacySettings? Privacy { get; init; }

    /// <summary>How reports name the run (default: the algorithm).</summary>
    public string? Label { get; init; }
}

/// <summary>One round of a simulation, as the comparison table and plot show it.</summary>
public sealed record RoundReport(
    int Round, int Participants, double EvalLoss, double RougeL, double ExactMatch, double TrainLoss,
    double BytesUpPerClient, double BytesDownPerClient, double ClientComputeSeconds, double ForwardPassesPerClient,
    double BackwardPassesPerClient, double WallSeconds, int Rejected, double CoordinatorSeconds = 0, double? Epsilon = null, double? ClipNorm = null);

public sealed record SimulationResult(string Algorithm, SimulationOptions Options, IReadOnlyList<RoundReport> Rounds, string FinalFingerprint)
{
    /// <summary>The run's name in reports: its label, else its algorithm.</summary>
    public string Label => Options.Label ?? Algorithm;
}

/// <summary>
/// Runs an algorithm over in-process clients through exactly the interface the coordinator uses: clients
/// train and send packets (serialised to MessagePack, so byte counts are real), the coordinator checks and
/// aggregates them, and the global update is applied. Clients run one after another on one ONNX Runtime
/// session whose flat parameter buffer is reloaded from the global model for each.
/// </summary>
public static class Simulator
{
    public static SimulationResult Run(ArtifactPackage package, IReadOnlyList<InstructionExample> train, IReadOnlyList<InstructionExample> test,
        SimulationOptions options, ITokenizer tokenizer, Action<RoundReport>? onRound = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(package);
        ArgumentNullException.ThrowIfNull(train);
        ArgumentNullException.ThrowIfNull(test);
        ArgumentNullException.ThrowIfNull(options);
        if (test.Count == 0)
            throw new ArgumentException("Evaluation needs at least one held-out example.", nameof(test));
        if (!(options.Fraction is > 0 and <= 1))
            throw new ArgumentException($"--fraction {options.Fraction} must lie in (0, 1].");
        var encoder = new ExampleEncoder(tokenizer, options.MaxLength);
        var parts = Partitioner.Partition(train, options.Clients, options.Partition, (int)options.Seed, options.DirichletAlpha);
        var descriptor = ExperimentDescriptor.Create($"sim-{options.Algorithm}-{options.Seed}", options.Algorithm, options.Settings, options.Seed,
            package.Blocks, package.Manifest.ParametersSha256, options.Rounds, options.Fraction);
        descriptor.Privacy = options.Privacy is { IsEmpty: false } ? options.Privacy : null;
        descriptor.Validate();
        var coordinator = FederatedAlgorithms.Create(descriptor, package.Blocks);
        var client = FederatedAlgorithms.Create(descriptor, package.Blocks);
        var privateRounds = descriptor.Privacy is null ? null : new SimulatedPrivateRounds(descriptor, (FerretAlgorithm)coordinator);

        using var trainer = new OnnxTrainer(package.Layout, package.TrainGraphPath, package.EvalGraphPath, options.Session);
        var global = package.LoadParameters();
        var models = parts.Select(p => new OnnxLocalModel(trainer, encoder, p.Select(i => encoder.Encode(train[i])).ToList(), options.Settings.MicroBatches)).ToArray();
        var evalSet = test.Take(options.EvalExamples).Select(encoder.Encode).ToList();
        var generateSet = test.Take(options.GenerateExamples).ToList();
        using var generator = options.GenerateExamples > 0
            ? new GreedyGenerator(package.Layout, package.LogitsGraphPath, new float[global.Length], package.Manifest.Tokenizer.VocabSize, options.Session)
            : null;

        var reports = new List<RoundReport>();
        var (loss0, rouge0, exact0) = Evaluate(trainer, generator, global, evalSet, generateSet, encoder, options.MaxNewTokens);
        reports.Add(new RoundReport(0, 0, loss0, rouge0, exact0, double.NaN, 0, 0, 0, 0, 0, 0, 0));
        onRound?.Invoke(reports[0]);

        var sampler = new Random((int)(options.Seed ^ 0x5eed));
        int perRound = Math.Max(1, (int)Math.Round(options.Fraction * options.Clients));
        for (int round = 1; round <= options.Rounds; round++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var timer = Stopwatch.StartNew();
            var chosen = Enumerable.Range(0, options.Clients).OrderBy(_ => sampler.Next()).Take(perRound).Order().ToList();
            var packets = new List<ClientUpdate>();
            double up = 0, compute = 0, forward = 0, backward = 0, trainLoss = 0, coordinatorSeconds = 0;
            int rejected = 0;
            foreach (var c in chosen)
            {
                global.CopyTo(trainer.Parameters, 0);
                models[c].StartRound(unchecked((int)SeedMix.Combine(options.Seed, (ulong)round, (ulong)c, 1)));
                var packet = client.Train(round, models[c], new Random(unchecked((int)SeedMix.Combine(options.Seed, (ulong)round, (ulong)c, 2))), cancellationToken);
                if (privateRounds is { Secure: true })
                {
                    // Under secure aggregation nothing leaves the client in the clear; its masked input is counted below.
                    packets.Add(packet);
                    compute += packet.Stats.ComputeSeconds;
                    forward += packet.Stats.ForwardPasses;
                    backward += packet.Stats.BackwardPasses;
                    trainLoss += packet.Stats.Loss;
                    continue;
                }
                var bytes = Wire.Serialize(packet);
                up += bytes.Length;
                var received = Wire.Deserialize<ClientUpdate>(bytes);
                var checkTimer = Stopwatch.StartNew();
                var verdict = coordinator.Check(received, round);
                coordinatorSeconds += checkTimer.Elapsed.TotalSeconds;
                if (!verdict.Accepted)
                {
                    rejected++;
                    continue;
                }
                packets.Add(received);
                compute += packet.Stats.ComputeSeconds;
                forward += packet.Stats.ForwardPasses;
                backward += packet.Stats.BackwardPasses;
                trainLoss += packet.Stats.Loss;
            }
            GlobalUpdate update;
            double? epsilon = null, clipNorm = null;
            double stageBytesDown = 0;
            if (privateRounds is null)
            {
                var aggregateTimer = Stopwatch.StartNew();
                update = coordinator.Aggregate(round, packets, []);
                coordinatorSeconds += aggregateTimer.Elapsed.TotalSeconds;
            }
            else
            {
                var ids = chosen.Select(c => $"client-{c:D5}").ToList();
                var outcome = privateRounds.Run(round, ids, packets.Cast<FerretUpdate>().ToList(), options.Clients, cancellationToken);
                update = outcome.Update;
                epsilon = outcome.Privacy.Epsilon;
                clipNorm = outcome.Privacy.ClipNorm;
                up += outcome.BytesUp;
                stageBytesDown = outcome.BytesDown;
                compute += outcome.ClientSeconds;
                coordinatorSeconds += outcome.CoordinatorSeconds;
                if (outcome.Privacy.SecureAggregation || outcome.Privacy.Epsilon is not null)
                    trainLoss = (outcome.MeanTrainLoss ?? double.NaN) * Math.Max(1, packets.Count);
            }
            var down = Wire.Serialize(update);
            coordinator.Apply(Wire.Deserialize<GlobalUpdate>(down), global);
            var (loss, rouge, exact) = Evaluate(trainer, generator, global, evalSet, generateSet, encoder, options.MaxNewTokens);
            int n = Math.Max(1, packets.Count);
            var report = new RoundReport(round, packets.Count, loss, rouge, exact, trainLoss / n, up / chosen.Count, down.Length + (stageBytesDown / chosen.Count),
                compute / n, forward / n, backward / n, timer.Elapsed.TotalSeconds, rejected, coordinatorSeconds, epsilon, clipNorm);
            reports.Add(report);
            onRound?.Invoke(report);
        }
        return new SimulationResult(options.Algorithm, options, reports, ModelFingerprint.Compute(global));
    }

    /// <summary>Mean eval loss over held-out examples (weighted by supervised tokens), Rouge-L and exact match of greedy answers.</summary>
    public static (double Loss, double RougeL, double ExactMatch) Evaluate(OnnxTrainer trainer, GreedyGenerator? generator, float[] parameters,
        IReadOnlyList<EncodedExample> evalSet, IReadOnlyList<InstructionExample> generateSet, ExampleEncoder encoder, int maxNewTokens = 24)
    {
        ArgumentNullException.ThrowIfNull(trainer);
        ArgumentNullException.ThrowIfNull(parameters);
        ArgumentNullException.ThrowIfNull(evalSet);
        ArgumentNullException.ThrowIfNull(generateSet);
        ArgumentNullException.ThrowIfNull(encoder);
        parameters.CopyTo(trainer.Parameters, 0);
        double weighted = 0;
        long tokens = 0;
        using (trainer.FreezeParameters())
        {
            foreach (var e in evalSet)
            {
                var batch = encoder.Collate([e]);
                int supervised = batch.SupervisedTokenCount;
                if (supervised == 0)
                    continue;
                weighted += trainer.Loss(batch) * (double)supervised;
                tokens += supervised;
            }
        }
        double rouge = double.NaN, exact = double.NaN;
        if (generator is not null && generateSet.Count > 0)
        {
            parameters.CopyTo(generator.Parameters, 0);
            double r = 0, x = 0;
            foreach (var example in generateSet)
            {
                var answer = encoder.Tokenizer.Decode(generator.Generate(encoder.EncodePrompt(example), maxNewTokens, encoder.Tokenizer.EosId));
                r += Metrics.RougeL(answer, example.Output);
                x += Metrics.ExactMatch(answer, example.Output) ? 1 : 0;
            }
            rouge = r / generateSet.Count;
            exact = x / generateSet.Count;
        }
        return (tokens > 0 ? weighted / tokens : double.NaN, rouge, exact);
    }
}
