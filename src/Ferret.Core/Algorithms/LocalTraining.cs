using System.Diagnostics;
using System.Numerics.Tensors;
using Ferret.Core.Packets;

namespace Ferret.Core.Algorithms;

/// <summary>The local loops the algorithms share: first-order SGD with accumulation, and zeroth-order probes.</summary>
internal static class LocalTraining
{
    /// <summary>
    /// T steps of SGD, each averaging the gradients of n_accum micro-batches; returns
    /// <c>delta = w_before - w_after</c> (dispose it) and leaves the parameters at <c>w_before</c>.
    /// </summary>
    public static ILocalUpdate FirstOrder(ILocalModel model, AlgorithmSettings settings, TrainingStats stats, CancellationToken ct)
    {
        var timer = Stopwatch.StartNew();
        float rate = (float)(settings.LocalLearningRate / settings.MicroBatches);
        if (model is IFirstOrderLocalModel resident
            && resident.TryTrainFirstOrder(settings.LocalSteps, settings.MicroBatches, rate, ct) is { } trained)
        {
            var (update, meanLoss) = trained;
            if (!double.IsFinite(meanLoss))
            {
                update.Dispose();
                throw new InvalidDataException($"Local training diverged: mean loss {meanLoss}.");
            }
            int n = settings.LocalSteps * settings.MicroBatches;
            stats.Loss = meanLoss;
            stats.ForwardPasses += n;
            stats.BackwardPasses += n;
            stats.ComputeSeconds += timer.Elapsed.TotalSeconds;
            return update;
        }
        var result = new float[model.Parameters.Length];
        var w = model.Parameters;
        var before = w.ToArray();
        var gradient = new float[w.Length];
        var sum = new float[w.Length];
        double lossSum = 0;
        int passes = 0;
        for (int step = 0; step < settings.LocalSteps; step++)
        {
            Array.Clear(sum);
            for (int m = 0; m < settings.MicroBatches; m++)
            {
                ct.ThrowIfCancellationRequested();
                float loss = model.ForwardBackward(step, m, gradient);
                if (!float.IsFinite(loss))
                    throw new InvalidDataException($"Local training diverged: loss {loss} at step {step}, micro-batch {m}.");
                lossSum += loss;
                passes++;
                TensorPrimitives.Add(sum, gradient, sum);
            }
            // w -= eta * mean(g)
            TensorPrimitives.MultiplyAdd(sum, -rate, w.Span, w.Span);
        }
        var delta = result;
        TensorPrimitives.Subtract(before, w.Span, delta);
        before.CopyTo(w);
        stats.Loss = lossSum / Math.Max(1, passes);
        stats.ForwardPasses += passes;
        stats.BackwardPasses += passes;
        stats.ComputeSeconds += timer.Elapsed.TotalSeconds;
        return new InMemoryUpdate(delta);
    }

    /// <summary>Checks the fields every packet shares.</summary>
    public static PacketVerdict CheckEnvelope(ClientUpdate update, ExperimentDescriptor experiment, int round)
    {
        if (update.Version != ClientUpdate.CurrentVersion)
            return PacketVerdict.Reject($"packet version {update.Version} is not supported (expected {ClientUpdate.CurrentVersion})");
        if (update.ExperimentId != experiment.Id)
            return PacketVerdict.Reject($"packet is for experiment '{update.ExperimentId}', not '{experiment.Id}'");
        if (update.Round != round)
            return PacketVerdict.Reject($"packet is for round {update.Round}; round {round} is open");
        if (update.SampleCount <= 0)
            return PacketVerdict.Reject($"sample count {update.SampleCount} is not positive");
        return PacketVerdict.Accept;
    }

    public static PacketVerdict CheckValues(ReadOnlySpan<float> values, double maxAbs, string what)
    {
        for (int i = 0; i < values.Length; i++)
        {
            float v = values[i];
            if (!float.IsFinite(v))
                return PacketVerdict.Reject($"{what}[{i}] = {v} is not finite");
            if (Math.Abs(v) > maxAbs)
                return PacketVerdict.Reject($"{what}[{i}] = {v} exceeds the bound {maxAbs}");
        }
        return PacketVerdict.Accept;
    }

    public static double[] Weights(IReadOnlyList<ClientUpdate> updates, Aggregation.ClientWeighting weighting)
    {
        double total = updates.Sum(u => (double)u.SampleCount);
        return updates.Select(u => weighting == Aggregation.ClientWeighting.Equal || total <= 0
            ? 1.0 / updates.Count
            : u.SampleCount / total).ToArray();
    }
}
