using System.Diagnostics;
using Ferret.Core.Aggregation;
using Ferret.Core.Packets;
using Ferret.Core.Parameters;
using Ferret.Core.Projection;

namespace Ferret.Core.Algorithms;

/// <summary>
/// Ferret: first-order local updates, projected onto seeded random bases per block with norm-adaptive seed
/// counts; the coordinator keeps a seed pool and sends float32 coefficients; everyone reconstructs.
/// </summary>
public sealed class FerretAlgorithm : IFederatedAlgorithm
{
    private readonly ExperimentDescriptor _experiment;
    private readonly ParameterBlocks _blocks;
    private readonly KernelOptions _kernels;
    private SeedPool _pool;

    public FerretAlgorithm(ExperimentDescriptor experiment, ParameterBlocks blocks, KernelOptions? kernels = null)
    {
        ArgumentNullException.ThrowIfNull(experiment);
        ArgumentNullException.ThrowIfNull(blocks);
        experiment.Validate();
        if (blocks.Count != experiment.BlockLengths.Length || blocks.TotalLength != experiment.ParameterCount)
            throw new ArgumentException($"The model's {blocks.Count} blocks do not match the experiment's {experiment.BlockLengths.Length}.");
        _experiment = experiment;
        _blocks = blocks;
        _kernels = kernels ?? KernelOptions.Default;
        _pool = new SeedPool(experiment.Settings.CandidateSeeds, blocks.Count);
    }

    public string Name => FederatedAlgorithms.Ferret;

    public ClientUpdate Train(int round, ILocalModel model, Random clientRandom, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(clientRandom);
        var stats = new TrainingStats();
        using var delta = LocalTraining.FirstOrder(model, _experiment.Settings, stats, cancellationToken);
        var timer = Stopwatch.StartNew();
        var gammas = Projector.Project(delta, _blocks, _experiment.CandidateSeeds, _experiment.Settings.Distribution, clientRandom, _kernels);
        stats.ComputeSeconds += timer.Elapsed.TotalSeconds;
        return new FerretUpdate
        {
            ExperimentId = _experiment.Id,
            Round = round,
            SampleCount = model.SampleCount,
            Stats = stats,
            SeedIndices = gammas.SeedIndices,
            Blocks = gammas.Blocks,
            Gammas = gammas.Values,
        };
    }

    public PacketVerdict Check(ClientUpdate update, int round)
    {
        ArgumentNullException.ThrowIfNull(update);
        if (update is not FerretUpdate f)
            return PacketVerdict.Reject($"a {update.GetType().Name} is not a Ferret packet");
        var envelope = LocalTraining.CheckEnvelope(update, _experiment, round);
        if (!envelope.Accepted)
            return envelope;
        foreach (var (field, name) in new (object?, string)[] { (f.SeedIndices, "SeedIndices"), (f.Blocks, "Blocks"), (f.Gammas, "Gammas") })
        {
            if (LocalTraining.RequirePresent(field, name) is { Accepted: false } missing)
                return missing;
        }
        int n = f.Gammas.Length;
        if (f.SeedIndices.Length != n || f.Blocks.Length != n)
            return PacketVerdict.Reject($"{f.SeedIndices.Length} seed indices, {f.Blocks.Length} blocks and {n} gammas differ in length");
        int k = _experiment.Settings.CandidateSeeds;
        var perBlock = new int[_blocks.Count];
        var seen = new HashSet<long>();
        for (int i = 0; i < n; i++)
        {
            if ((uint)f.SeedIndices[i] >= (uint)k)
                return PacketVerdict.Reject($"seed index {f.SeedIndices[i]} is outside [0, {k})");
            if ((uint)f.Blocks[i] >= (uint)_blocks.Count)
                return PacketVerdict.Reject($"block {f.Blocks[i]} is outside [0, {_blocks.Count})");
            if (!seen.Add(((long)f.Blocks[i] * k) + f.SeedIndices[i]))
                return PacketVerdict.Reject($"seed {f.SeedIndices[i]} of block {f.Blocks[i]} appears twice");
            perBlock[f.Blocks[i]]++;
        }
        for (int b = 0; b < perBlock.Length; b++)
        {
            if (perBlock[b] < 2 || perBlock[b] > k)
                return PacketVerdict.Reject($"block {b} carries {perBlock[b]} seeds; Ferret sends 2..{k} per block");
        }
        return LocalTraining.CheckValues(f.Gammas, _experiment.Settings.MaxAbsPacketValue, "gamma");
    }

    public GlobalUpdate Aggregate(int round, IReadOnlyList<ClientUpdate> updates, IReadOnlyList<ClientFailure> failures)
    {
        ArgumentNullException.ThrowIfNull(updates);
        var s = _experiment.Settings;
        var contributions = updates.Cast<FerretUpdate>()
            .Select(u => new SeedContribution(new SeedCoordinates(u.SeedIndices, u.Blocks, u.Gammas), u.SampleCount)).ToList();
        _pool.Accumulate(contributions, s.ServerMomentum, s.Weighting);
        var c = _pool.Coefficients(s.Schedule(_experiment.Rounds).At(round), s.ClipNorm, s.Distribution);
        return new SeedCoefficientsUpdate
        {
            ExperimentId = _experiment.Id,
            Round = round,
            Contributors = updates.Count,
            SeedIndices = c.SeedIndices,
            Blocks = c.Blocks,
            Coefficients = c.Values,
        };
    }

    /// <summary>Length of the dense gamma over the experiment's (block, candidate seed) space: <c>B * K</c>.</summary>
    public int DenseLength => _blocks.Count * _experiment.Settings.CandidateSeeds;

    /// <summary>
    /// Coordinator side of private aggregation: the round's mean gamma arrives already summed (and noised), laid
    /// out as <c>mean[b * K + k]</c>; it enters the seed pool exactly as an average of packets would.
    /// </summary>
    public GlobalUpdate AggregateMean(int round, ReadOnlySpan<double> mean, int contributors)
    {
        var s = _experiment.Settings;
        _pool.AccumulateMean(mean, s.ServerMomentum);
        var c = _pool.Coefficients(s.Schedule(_experiment.Rounds).At(round), s.ClipNorm, s.Distribution);
        return new SeedCoefficientsUpdate
        {
            ExperimentId = _experiment.Id,
            Round = round,
            Contributors = contributors,
            SeedIndices = c.SeedIndices,
            Blocks = c.Blocks,
            Coefficients = c.Values,
        };
    }

    public void Apply(GlobalUpdate update, Memory<float> parameters)
    {
        if (update is not SeedCoefficientsUpdate u)
            throw new ArgumentException($"Ferret applies seed-coefficient updates, not {update?.GetType().Name ?? "null"}.", nameof(update));
        Reconstruction.Apply(parameters, _blocks, new SeedCoordinates(u.SeedIndices, u.Blocks, u.Coefficients), _experiment.CandidateSeeds,
            _experiment.Settings.Distribution, _kernels);
    }

    public byte[]? ExportState() => _pool.Export();

    public void ImportState(ReadOnlySpan<byte> state)
    {
        var pool = SeedPool.Import(state);
        if (pool.CandidateCount != _pool.CandidateCount || pool.BlockCount != _pool.BlockCount)
            throw new InvalidDataException($"Saved seed pool is {pool.CandidateCount} x {pool.BlockCount}; this experiment needs {_pool.CandidateCount} x {_pool.BlockCount}.");
        _pool = pool;
    }
}
