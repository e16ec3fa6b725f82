using System.Diagnostics;
using System.Numerics.Tensors;
using Ferret.Core.Packets;
using Ferret.Core.Projection;

namespace Ferret.Core.Algorithms;

/// <summary>
/// FedKSeed: zeroth-order local steps along perturbations <c>z_k</c> regenerated from K shared seeds; each
/// step picks one seed, estimates <c>g = (L(w + eps z) - L(w - eps z)) / 2 eps</c> and steps
/// <c>w -= eta g z</c>. Clients send the accumulated scalar per touched seed; the global update is
/// <c>w -= eta * sum_k G_k z_k</c>.
/// </summary>
public sealed class FedKSeedAlgorithm : IFederatedAlgorithm
{
    private readonly ExperimentDescriptor _experiment;
    private readonly KernelOptions _kernels;

    public FedKSeedAlgorithm(ExperimentDescriptor experiment, KernelOptions? kernels = null)
    {
        ArgumentNullException.ThrowIfNull(experiment);
        experiment.Validate();
        _experiment = experiment;
        _kernels = kernels ?? KernelOptions.Default;
    }

    public string Name => FederatedAlgorithms.FedKSeed;

    public ClientUpdate Train(int round, ILocalModel model, Random clientRandom, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(clientRandom);
        var s = _experiment.Settings;
        var timer = Stopwatch.StartNew();
        var w = model.Parameters;
        var before = w.ToArray();
        var start = new float[w.Length];
        var z = new float[w.Length];
        var scalars = new Dictionary<int, double>();
        float eps = (float)s.ZerothOrderEpsilon;
        double lossSum = 0;
        for (int step = 0; step < s.LocalSteps; step++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            int k = clientRandom.Next(s.CandidateSeeds);
            SeedPerturbations.Fill(_experiment.CandidateSeeds[k], s.Distribution, z, _kernels);
            w.Span.CopyTo(start);
            TensorPrimitives.MultiplyAdd(z, eps, start, w.Span);
            float plus = model.Loss(step);
            TensorPrimitives.MultiplyAdd(z, -eps, start, w.Span);
            float minus = model.Loss(step);
            if (!float.IsFinite(plus) || !float.IsFinite(minus))
                throw new InvalidDataException($"Local training diverged: losses {plus} and {minus} at step {step}.");
            lossSum += 0.5 * (plus + minus);
            double g = (plus - minus) / (2.0 * eps);
            TensorPrimitives.MultiplyAdd(z, (float)(-s.LocalLearningRate * g), start, w.Span);
            scalars[k] = scalars.GetValueOrDefault(k) + g;
        }
        before.CopyTo(w);
        var keys = scalars.Keys.Order().ToArray();
        return new SeedScalarsUpdate
        {
            ExperimentId = _experiment.Id,
            Round = round,
            SampleCount = model.SampleCount,
            Stats = new TrainingStats
            {
                Loss = lossSum / s.LocalSteps,
                ForwardPasses = 2 * s.LocalSteps,
                ComputeSeconds = timer.Elapsed.TotalSeconds,
            },
            SeedIndices = keys,
            Scalars = keys.Select(k => (float)scalars[k]).ToArray(),
        };
    }

    public PacketVerdict Check(ClientUpdate update, int round)
    {
        ArgumentNullException.ThrowIfNull(update);
        if (update is not SeedScalarsUpdate u)
            return PacketVerdict.Reject($"a {update.GetType().Name} is not a FedKSeed packet");
        var envelope = LocalTraining.CheckEnvelope(update, _experiment, round);
        if (!envelope.Accepted)
            return envelope;
        if (LocalTraining.RequirePresent(u.SeedIndices, "SeedIndices") is { Accepted: false } noSeeds)
            return noSeeds;
        if (LocalTraining.RequirePresent(u.Scalars, "Scalars") is { Accepted: false } noScalars)
            return noScalars;
        if (u.SeedIndices.Length != u.Scalars.Length)
            return PacketVerdict.Reject($"{u.SeedIndices.Length} seed indices but {u.Scalars.Length} scalars");
        var seen = new HashSet<int>();
        foreach (var k in u.SeedIndices)
        {
            if ((uint)k >= (uint)_experiment.Settings.CandidateSeeds)
                return PacketVerdict.Reject($"seed index {k} is outside [0, {_experiment.Settings.CandidateSeeds})");
            if (!seen.Add(k))
                return PacketVerdict.Reject($"seed index {k} appears twice");
        }
        return LocalTraining.CheckValues(u.Scalars, _experiment.Settings.MaxAbsPacketValue, "scalar");
    }

    public GlobalUpdate Aggregate(int round, IReadOnlyList<ClientUpdate> updates, IReadOnlyList<ClientFailure> failures)
    {
        ArgumentNullException.ThrowIfNull(updates);
        var weights = LocalTraining.Weights(updates, _experiment.Settings.Weighting);
        var sum = new SortedDictionary<int, double>();
        for (int j = 0; j < updates.Count; j++)
        {
            var u = (SeedScalarsUpdate)updates[j];
            for (int i = 0; i < u.SeedIndices.Length; i++)
                sum[u.SeedIndices[i]] = sum.GetValueOrDefault(u.SeedIndices[i]) + (weights[j] * u.Scalars[i]);
        }
        double eta = _experiment.Settings.LocalLearningRate;
        return new SeedScalarsGlobalUpdate
        {
            ExperimentId = _experiment.Id,
            Round = round,
            Contributors = updates.Count,
            SeedIndices = sum.Keys.ToArray(),
            Coefficients = sum.Values.Select(g => (float)(eta * g)).ToArray(),
        };
    }

    public void Apply(GlobalUpdate update, Memory<float> parameters)
    {
        if (update is not SeedScalarsGlobalUpdate u)
            throw new ArgumentException($"FedKSeed applies seed-scalar updates, not {update?.GetType().Name ?? "null"}.", nameof(update));
        var seeds = u.SeedIndices.Select(k => (uint)k < (uint)_experiment.CandidateSeeds.Length
            ? _experiment.CandidateSeeds[k]
            : throw new ArgumentException($"Seed index {k} is outside [0, {_experiment.CandidateSeeds.Length}).", nameof(update))).ToArray();
        SeedPerturbations.Apply(seeds, u.Coefficients, _experiment.Settings.Distribution, parameters, _kernels);
    }

    public byte[]? ExportState() => null;

    public void ImportState(ReadOnlySpan<byte> state)
    {
        if (!state.IsEmpty)
            throw new InvalidDataException($"FedKSeed keeps no server state, but {state.Length} bytes were given.");
    }
}
