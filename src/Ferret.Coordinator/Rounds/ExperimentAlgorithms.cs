using System.Collections.Concurrent;
using Ferret.Coordinator.Persistence;
using Ferret.Core.Algorithms;
using Ferret.Core.Packets;
using Ferret.Core.Parameters;
using Ferret.Core.Privacy;

namespace Ferret.Coordinator.Rounds;

/// <summary>An experiment's coordinator side: its descriptor, its algorithm, and its private aggregation when it has privacy settings.</summary>
public sealed record ExperimentAlgorithm(ExperimentDescriptor Descriptor, IFederatedAlgorithm Algorithm, PrivateAggregation? Private)
{
    /// <summary>What the round log keeps as the aggregator's state (the private aggregation's includes the seed pool).</summary>
    public byte[]? ExportState() => Private is not null ? Private.ExportState() : Algorithm.ExportState();
}

/// <summary>The coordinator side of each experiment's algorithm, built once from its stored descriptor.</summary>
public sealed class ExperimentAlgorithms(IRoundLog log)
{
    private readonly ConcurrentDictionary<string, ExperimentAlgorithm> _cache = new(StringComparer.Ordinal);

    /// <summary>The experiment's descriptor and algorithm, or null when there is no such experiment.</summary>
    public ExperimentAlgorithm? Get(string experimentId)
    {
        if (_cache.TryGetValue(experimentId, out var hit))
            return hit;
        if (log.GetExperiment(experimentId) is not { } record)
            return null;
        var descriptor = Wire.Deserialize<ExperimentDescriptor>(record.Descriptor);
        var algorithm = FederatedAlgorithms.Create(descriptor, ParameterBlocks.FromLengths(descriptor.BlockLengths));
        var privateAggregation = descriptor.Privacy is { IsEmpty: false } ? new PrivateAggregation(descriptor, (FerretAlgorithm)algorithm) : null;
        if (log.GetServerState(experimentId) is { } state)
        {
            if (privateAggregation is not null)
                privateAggregation.ImportState(state);
            else
                algorithm.ImportState(state);
        }
        return _cache.GetOrAdd(experimentId, new ExperimentAlgorithm(descriptor, algorithm, privateAggregation));
    }

    /// <summary>Drops the cached aggregator so the next use rebuilds it from the round log.</summary>
    public void Evict(string experimentId) => _cache.TryRemove(experimentId, out _);
}
