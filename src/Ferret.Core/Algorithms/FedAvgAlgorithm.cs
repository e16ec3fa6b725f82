using Ferret.Core.Packets;

namespace Ferret.Core.Algorithms;

/// <summary>FedAvg: first-order local training, full deltas up, the weighted average scaled by eta_g down.</summary>
public sealed class FedAvgAlgorithm(ExperimentDescriptor experiment) : FullDeltaAlgorithm(experiment)
{
    public override string Name => FederatedAlgorithms.FedAvg;

    protected override float[] LocalDelta(ILocalModel model, Random clientRandom, TrainingStats stats, CancellationToken ct)
    {
        using var update = LocalTraining.FirstOrder(model, Experiment.Settings, stats, ct);
        return update.ToArray();
    }
}

/// <summary>The coordinator half shared by FedAvg and FedZO: validate, average, apply full deltas.</summary>
public abstract class FullDeltaAlgorithm : IFederatedAlgorithm
{
    protected FullDeltaAlgorithm(ExperimentDescriptor experiment)
    {
        ArgumentNullException.ThrowIfNull(experiment);
        experiment.Validate();
        Experiment = experiment;
    }

    protected ExperimentDescriptor Experiment { get; }

    public abstract string Name { get; }

    protected abstract float[] LocalDelta(ILocalModel model, Random clientRandom, TrainingStats stats, CancellationToken ct);

    public ClientUpdate Train(int round, ILocalModel model, Random clientRandom, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(clientRandom);
        var stats = new TrainingStats();
        var delta = LocalDelta(model, clientRandom, stats, cancellationToken);
        return new FullDeltaUpdate { ExperimentId = Experiment.Id, Round = round, SampleCount = model.SampleCount, Stats = stats, Delta = delta };
    }

    public PacketVerdict Check(ClientUpdate update, int round)
    {
        ArgumentNullException.ThrowIfNull(update);
        if (update is not FullDeltaUpdate f)
            return PacketVerdict.Reject($"a {update.GetType().Name} is not a full-delta packet");
        var envelope = LocalTraining.CheckEnvelope(update, Experiment, round);
        if (!envelope.Accepted)
            return envelope;
        if (LocalTraining.RequirePresent(f.Delta, "Delta") is { Accepted: false } missing)
            return missing;
        if (f.Delta.LongLength != Experiment.ParameterCount)
            return PacketVerdict.Reject($"delta has {f.Delta.Length} values; the model has {Experiment.ParameterCount}");
        return LocalTraining.CheckValues(f.Delta, Experiment.Settings.MaxAbsPacketValue, "delta");
    }

    public GlobalUpdate Aggregate(int round, IReadOnlyList<ClientUpdate> updates, IReadOnlyList<ClientFailure> failures)
    {
        ArgumentNullException.ThrowIfNull(updates);
        var sum = new double[Experiment.ParameterCount];
        var weights = LocalTraining.Weights(updates, Experiment.Settings.Weighting);
        for (int j = 0; j < updates.Count; j++)
        {
            var d = ((FullDeltaUpdate)updates[j]).Delta;
            double w = weights[j];
            for (int i = 0; i < d.Length; i++)
                sum[i] += w * d[i];
        }
        double eta = Experiment.Settings.GlobalLearningRate;
        var delta = new float[sum.Length];
        for (int i = 0; i < sum.Length; i++)
            delta[i] = (float)(eta * sum[i]);
        return new FullDeltaGlobalUpdate { ExperimentId = Experiment.Id, Round = round, Contributors = updates.Count, Delta = delta };
    }

    public void Apply(GlobalUpdate update, Memory<float> parameters)
    {
        if (update is not FullDeltaGlobalUpdate u)
            throw new ArgumentException($"{Name} applies full-delta updates, not {update?.GetType().Name ?? "null"}.", nameof(update));
        if (u.Delta.Length != parameters.Length)
            throw new ArgumentException($"The update has {u.Delta.Length} values; the model has {parameters.Length}.", nameof(update));
        System.Numerics.Tensors.TensorPrimitives.Subtract(parameters.Span, u.Delta, parameters.Span);
    }

    public byte[]? ExportState() => null;

    public void ImportState(ReadOnlySpan<byte> state)
    {
        if (!state.IsEmpty)
            throw new InvalidDataException($"{Name} keeps no server state, but {state.Length} bytes were given.");
    }
}
