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
        TrainingOptions options, Action<TrainingProgress>? onProgress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(package);
        ArgumentNullException.ThrowIfNull(train);
        ArgumentNullException.ThrowIfNull(test);
        ArgumentNullException.ThrowIfNull(encoder);
        ArgumentNullException.ThrowIfNull(options);
        if (train.Count == 0)
            throw new ArgumentException("No training examples.", nameof(train));
        IOptimizer optimizer = options.Optimizer switch
        {
            "sgd" => new Sgd(options.LearningRate, options.Momentum, options.WeightDecay),
            "adamw" => new AdamW(options.LearningRate, weightDecay: options.WeightDecay),
            _ => throw new ArgumentException($"Unknown optimizer '{options.Optimizer}': expected sgd or adamw."),
        };
        using var trainer = new OnnxTrainer(package.Layout, package.TrainGraphPath, package.EvalGraphPath, options.Session);
        package.LoadParameters().CopyTo(trainer.Parameters, 0);
        var accumulated = new float[trainer.Gradients.Length];
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
            Array.Clear(accumulated);
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
                float loss = trainer.ForwardBackward(batch);
                if (!float.IsFinite(loss))
                    throw new InvalidDataException($"Training diverged at step {step}: loss {loss}. Lower the learning rate.");
                lossSum += loss;
                since++;
                tokens += batch.TokenCount;
                System.Numerics.Tensors.TensorPrimitives.Add(accumulated, trainer.Gradients, accumulated);
            }
            System.Numerics.Tensors.TensorPrimitives.Multiply(accumulated, 1f / options.MicroBatches, accumulated);
            if (options.ClipNorm > 0)
                GradientClipping.ClipByGlobalNorm(accumulated, options.ClipNorm);
            optimizer.Step(trainer.Parameters, accumulated);
            bool evaluate = step % options.EvalEvery == 0 || step == options.Steps;
            if (evaluate || step % Math.Max(1, options.EvalEvery / 5) == 0)
            {
                double? eval = evaluate && test.Count > 0 ? EvalLoss(trainer, test.Take(options.EvalExamples), encoder) : null;
                onProgress?.Invoke(new TrainingProgress(step, lossSum / since, eval, tokens / timer.Elapsed.TotalSeconds));
                lossSum = 0;
                since = 0;
            }
        }
        return (float[])trainer.Parameters.Clone();
    }

    public static double EvalLoss(OnnxTrainer trainer, IEnumerable<EncodedExample> examples, ExampleEncoder encoder)
    {
        ArgumentNullException.ThrowIfNull(trainer);
        ArgumentNullException.ThrowIfNull(examples);
        ArgumentNullException.ThrowIfNull(encoder);
        double weighted = 0;
        long count = 0;
        foreach (var e in examples)
        {
            var batch = encoder.Collate([e]);
            int n = batch.SupervisedTokenCount;
            if (n == 0)
                continue;
            weighted += trainer.Loss(batch) * (double)n;
            count += n;
        }
        return count > 0 ? weighted / count : double.NaN;
    }

    /// <summary>Saves tuned parameters as a new package beside the graphs of the original.</summary>
    public static ArtifactPackage Save(ArtifactPackage package, float[] parameters, string outputDirectory, bool overwrite) =>
        TunedModel.SavePackage(package, parameters, outputDirectory, overwrite);
}
