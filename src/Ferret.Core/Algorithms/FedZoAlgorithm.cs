using System.Diagnostics;
using System.Numerics.Tensors;
using Ferret.Core.Packets;

namespace Ferret.Core.Algorithms;

/// <summary>
/// FedZO: H local steps of zeroth-order SGD, each averaging b two-point estimates along random directions
/// from the client's own randomness (Gaussian), then the full delta up and the average down.
/// </summary>
public sealed class FedZoAlgorithm(ExperimentDescriptor experiment) : FullDeltaAlgorithm(experiment)
{
    public override string Name => FederatedAlgorithms.FedZo;

    protected override float[] LocalDelta(ILocalModel model, Random clientRandom, TrainingStats stats, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(model);
        var s = Experiment.Settings;
        var timer = Stopwatch.StartNew();
        var w = model.Parameters;
        var before = w.ToArray();
        var start = new float[w.Length];
        var direction = new float[w.Length];
        var estimate = new float[w.Length];
        float eps = (float)s.ZerothOrderEpsilon;
        double lossSum = 0;
        for (int step = 0; step < s.LocalSteps; step++)
        {
            w.Span.CopyTo(start);
            Array.Clear(estimate);
            for (int d = 0; d < s.ZerothOrderDirections; d++)
            {
                ct.ThrowIfCancellationRequested();
                for (int i = 0; i < direction.Length; i++)
                    direction[i] = (float)clientRandom.NextGaussian();
                TensorPrimitives.MultiplyAdd(direction, eps, start, w.Span);
                float plus = model.Loss(step);
                TensorPrimitives.MultiplyAdd(direction, -eps, start, w.Span);
                float minus = model.Loss(step);
                if (!float.IsFinite(plus) || !float.IsFinite(minus))
                    throw new InvalidDataException($"Local training diverged: losses {plus} and {minus} at step {step}.");
                lossSum += 0.5 * (plus + minus);
                float g = (plus - minus) / (2 * eps) / s.ZerothOrderDirections;
                TensorPrimitives.MultiplyAdd(direction, g, estimate, estimate);
            }
            TensorPrimitives.MultiplyAdd(estimate, -(float)s.LocalLearningRate, start, w.Span);
        }
        var delta = new float[w.Length];
        TensorPrimitives.Subtract(before, w.Span, delta);
        before.CopyTo(w);
        int passes = 2 * s.LocalSteps * s.ZerothOrderDirections;
        stats.Loss = lossSum / Math.Max(1, passes / 2);
        stats.ForwardPasses += passes;
        stats.ComputeSeconds += timer.Elapsed.TotalSeconds;
        return delta;
    }
}

internal static class RandomGaussian
{
    /// <summary>A standard normal draw (Box–Muller).</summary>
    public static double NextGaussian(this Random random)
    {
        double u1 = 1.0 - random.NextDouble();
        double u2 = random.NextDouble();
        return Math.Sqrt(-2.0 * Math.Log(u1)) * Math.Cos(2.0 * Math.PI * u2);
    }
}
