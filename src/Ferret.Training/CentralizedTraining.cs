using Ferret.Core.Parameters;
using Ferret.Onnx.Artifacts;
using Ferret.Training.Data;
using Ferret.Training.Optimizers;
using Ferret.Training.Runtime;

namespace Ferret.Training;

/// <summary>Settings of a centralized fine-tuning run.</summary>
public sealed record TrainingOptions
{
    public int Steps { get; init; } = 200;

    public int BatchSize { get; init; } = 4;

    public int MicroBatches { get; init; } = 1;

    public string Optimizer { get; init; } = "adamw";

    public float LearningRate { get; init; } = 1e-3f;

    public float WeightDecay { get; init; }

    public float Momentum { get; init; }

    /// <summary>Global gradient-norm clipping; 0 turns it off.</summary>
    public float ClipNorm { get; init; } = 1f;

    public int EvalEvery { get; init; } = 50;

    /// <summary>Steps between checkpoints handed to the caller (0: none; the final parameters are returned anyway).</summary>
    public int CheckpointEvery { get; init; }

    public int EvalExamples { get; init; } = 64;

    public int Seed { get; init; } = 1;

    public SessionSettings Session { get; init; } = new();
}

/// <summary>A point on the training curve.</summary>
public sealed record TrainingProgress(int Step, double TrainLoss, double? EvalLoss, double TokensPerSecond);

/// <summary>
/// Centralized fine-tuning of an artifact on a data set: shuffled mini-batches, gradient accumulation,
/// optional clipping, SGD or AdamW on the flat buffers, and the tuned parameters saved as a new package.
/// </summary>
public static class CentralizedTraining
{
    public static float[] Run(ArtifactPackage package, IReadOnlyList<EncodedExample> train, IReadOnlyList<EncodedExample> test, ExampleEncoder encoder,
        TrainingOptions options, Action<TrainingProgress>? onProgress = null, Action<int, float[]>? onCheckpoint = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(package);
        ArgumentNullException.ThrowIfNull(train);
        ArgumentNullException.ThrowIfNull(test);
        ArgumentNullException.ThrowIfNull(encoder);
        ArgumentNullException.ThrowIfNull(options);
        if (train.Count == 0)
            throw new ArgumentException("No training examples.", nameof(train));
        if (options.Optimizer is not ("sgd" or "adamw"))
            throw new ArgumentException($"Unknown optimizer '{options.Optimizer}': expected sgd or adamw.");
        using var trainer = new OnnxTrainer(package.Layout, package.TrainGraphPath, package.EvalGraphPath, options.Session);
        package.LoadParameters(trainer.Parameters);
        var loop = trainer.Resident is { } resident ? (Loop)new ResidentLoop(resident, trainer, options) : new HostLoop(trainer, options);
        var order = Enumerable.Range(0, train.Count).ToArray();
        var random = new Random(options.Seed);
        random.Shuffle(order);
        int cursor = 0;
        double lossSum = 0;
        long tokens = 0;
        int since = 0;
        var timer = System.Diagnostics.Stopwatch.StartNew();
        for (int step = 1; step <= options.Steps; step++)
        {
            for (int m = 0; m < options.MicroBatches; m++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var examples = new List<EncodedExample>(options.BatchSize);
                for (int b = 0; b < options.BatchSize; b++)
                {
                    if (cursor == order.Length)
                    {
                        random.Shuffle(order);
                        cursor = 0;
                    }
                    examples.Add(train[order[cursor++]]);
                }
                var batch = encoder.Collate(examples);
                float loss = loop.Accumulate(batch, first: m == 0);
                if (!float.IsFinite(loss))
                    throw new InvalidDataException($"Training diverged at step {step}: loss {loss}. Lower the learning rate.");
                lossSum += loss;
                since++;
                tokens += batch.TokenCount;
            }
            loop.Step();
            bool evaluate = step % options.EvalEvery == 0 || step == options.Steps;
            if (evaluate || step % Math.Max(1, options.EvalEvery / 5) == 0)
            {
                double? eval = evaluate && test.Count > 0 ? loop.EvalLoss(test.Take(options.EvalExamples), encoder) : null;
                onProgress?.Invoke(new TrainingProgress(step, lossSum / since, eval, tokens / timer.Elapsed.TotalSeconds));
                lossSum = 0;
                since = 0;
            }
            if (options.CheckpointEvery > 0 && step % options.CheckpointEvery == 0 && step < options.Steps)
                onCheckpoint?.Invoke(step, trainer.Parameters);
        }
        loop.Finish();
        return (float[])trainer.Parameters.Clone();
    }

    /// <summary>Accumulates micro-batch gradients, steps on their mean (clipped), evaluates.</summary>
    private abstract class Loop(TrainingOptions options)
    {
        protected TrainingOptions Options { get; } = options;

        public abstract float Accumulate(TokenBatch batch, bool first);

        public abstract void Step();

        public abstract double EvalLoss(IEnumerable<EncodedExample> examples, ExampleEncoder encoder);

        /// <summary>Leaves the trained parameters in the trainer's host buffer.</summary>
        public virtual void Finish()
        {
        }
    }

    /// <summary>Host buffers: the gradient of each micro-batch is summed on the host; SGD or AdamW run on the host.</summary>
    private sealed class HostLoop(OnnxTrainer trainer, TrainingOptions options) : Loop(options)
    {
        private readonly float[] _sum = new float[trainer.Parameters.Length];
        private readonly IOptimizer _optimizer = options.Optimizer == "sgd"
            ? new Sgd(options.LearningRate, options.Momentum, options.WeightDecay)
            : new AdamW(options.LearningRate, weightDecay: options.WeightDecay);

        public override float Accumulate(TokenBatch batch, bool first)
        {
            float loss = trainer.ForwardBackward(batch);
            if (first)
                trainer.Gradients.CopyTo(_sum, 0);
            else
                System.Numerics.Tensors.TensorPrimitives.Add(_sum, trainer.Gradients, _sum);
            return loss;
        }

        public override void Step()
        {
            System.Numerics.Tensors.TensorPrimitives.Multiply(_sum, 1f / Options.MicroBatches, _sum);
            if (Options.ClipNorm > 0)
                GradientClipping.ClipByGlobalNorm(_sum, Options.ClipNorm);
            _optimizer.Step(trainer.Parameters, _sum);
        }

        public override double EvalLoss(IEnumerable<EncodedExample> examples, ExampleEncoder encoder) =>
            CentralizedTraining.EvalLoss(trainer, examples, encoder);
    }

    /// <summary>Device buffers (CUDA by default): accumulation, clipping, the optimizer and evaluation stay on the device.</summary>
    private sealed class ResidentLoop : Loop
    {
        private readonly ResidentTraining _resident;
        private readonly OnnxTrainer _trainer;
        private readonly ResidentOptimizer _optimizer;

        public ResidentLoop(ResidentTraining resident, OnnxTrainer trainer, TrainingOptions options)
            : base(options)
        {
            _resident = resident;
            _trainer = trainer;
            _optimizer = options.Optimizer == "sgd"
                ? ResidentOptimizer.Sgd(options.Momentum, options.WeightDecay)
                : ResidentOptimizer.AdamW(options.WeightDecay);
            resident.Load(trainer.Parameters);
        }

        public override float Accumulate(TokenBatch batch, bool first) => _resident.ForwardBackward(batch);

        public override void Step()
        {
            float scale = 1f / Options.MicroBatches;
            if (Options.ClipNorm > 0)
            {
                // As GradientClipping.ClipByGlobalNorm on the mean gradient.
                float norm = (float)(_resident.GradientNorm() * scale);
                if (float.IsFinite(norm) && norm > Options.ClipNorm)
                    scale *= Options.ClipNorm / (norm + 1e-6f);
            }
            _resident.Step(_optimizer, Options.LearningRate, scale);
        }

        public override double EvalLoss(IEnumerable<EncodedExample> examples, ExampleEncoder encoder) =>
            WeightedLoss(examples, encoder, _resident.Loss);

        public override void Finish() => _resident.Store(_trainer.Parameters);
    }

    public static double EvalLoss(OnnxTrainer trainer, IEnumerable<EncodedExample> examples, ExampleEncoder encoder)
    {
        ArgumentNullException.ThrowIfNull(trainer);
        ArgumentNullException.ThrowIfNull(examples);
        ArgumentNullException.ThrowIfNull(encoder);
        using (trainer.FreezeParameters())
            return WeightedLoss(examples, encoder, trainer.Loss);
    }

    /// <summary>Mean loss per supervised token over single-example batches.</summary>
    private static double WeightedLoss(IEnumerable<EncodedExample> examples, ExampleEncoder encoder, Func<TokenBatch, float> loss)
    {
        double weighted = 0;
        long count = 0;
        foreach (var e in examples)
        {
            var batch = encoder.Collate([e]);
            int n = batch.SupervisedTokenCount;
            if (n == 0)
                continue;
            weighted += loss(batch) * (double)n;
            count += n;
        }
        return count > 0 ? weighted / count : double.NaN;
    }

    /// <summary>Saves tuned parameters as a new package beside the graphs of the original.</summary>
    public static ArtifactPackage Save(ArtifactPackage package, float[] parameters, string outputDirectory, bool overwrite) =>
        TunedModel.SavePackage(package, parameters, outputDirectory, overwrite);
}
