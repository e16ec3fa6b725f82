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

    /// <summary>Largest sample count a packet may claim (no device holds 2^31 examples); coordinators may cap it lower.</summary>
    public const long MaxSampleCount = int.MaxValue;

    /// <summary>Longest wall time a packet may claim for its local work (30 days).</summary>
    public const double MaxComputeSeconds = 30 * 24 * 3600;

    /// <summary>
    /// Checks the fields every packet shares, every reported value included: a value that cannot be stored,
    /// averaged or written as JSON (NaN, infinities, absurd magnitudes) never gets past the door.
    /// </summary>
    public static PacketVerdict CheckEnvelope(ClientUpdate update, ExperimentDescriptor experiment, int round)
    {
        if (update.Version != ClientUpdate.CurrentVersion)
            return PacketVerdict.Reject($"packet version {update.Version} is not supported (expected {ClientUpdate.CurrentVersion})");
        if (update.ExperimentId != experiment.Id)
            return PacketVerdict.Reject($"packet is for experiment '{Shorten(update.ExperimentId)}', not '{experiment.Id}'");
        if (update.Round != round)
            return PacketVerdict.Reject($"packet is for round {update.Round}; round {round} is open");
        if (update.SampleCount is <= 0 or > MaxSampleCount)
            return PacketVerdict.Reject($"sample count {update.SampleCount} is outside 1..{MaxSampleCount}");
        if (update.Stats is not { } stats)
            return PacketVerdict.Reject("packet has no training stats");
        double maxLoss = experiment.Settings.MaxAbsPacketValue;
        if (!double.IsFinite(stats.Loss) || Math.Abs(stats.Loss) > maxLoss)
            return PacketVerdict.Reject($"train loss {stats.Loss} is not a finite value within +-{maxLoss}");
        if (!double.IsFinite(stats.ComputeSeconds) || stats.ComputeSeconds is < 0 or > MaxComputeSeconds)
            return PacketVerdict.Reject($"compute seconds {stats.ComputeSeconds} are outside 0..{MaxComputeSeconds}");
        if (stats.ForwardPasses < 0 || stats.BackwardPasses < 0)
            return PacketVerdict.Reject($"pass counts {stats.ForwardPasses} and {stats.BackwardPasses} must not be negative");
        return PacketVerdict.Accept;
    }

    /// <summary>A caller-supplied string as a reason may quote it: at most 80 characters.</summary>
    public static string Shorten(string? text) =>
        text is null ? "(nil)" : text.Length <= 80 ? text : string.Concat(text.AsSpan(0, 80), $"... ({text.Length} characters)");

    /// <summary>Rejects a nil array field (MessagePack nil decodes to null) with its name.</summary>
    public static PacketVerdict RequirePresent(object? field, string name) =>
        field is null ? PacketVerdict.Reject($"packet field '{name}' is nil") : PacketVerdict.Accept;

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
