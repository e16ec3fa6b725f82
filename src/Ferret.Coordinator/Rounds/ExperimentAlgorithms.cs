using System.Collections.Concurrent;
using Ferret.Coordinator.Persistence;
using Ferret.Core.Algorithms;
using Ferret.Core.Packets;
using Ferret.Core.Parameters;

namespace Ferret.Coordinator.Rounds;

/// <summary>The coordinator side of each experiment's algorithm, built once from its stored descriptor.</summary>
public sealed class ExperimentAlgorithms(IRoundLog log)
{
    private readonly ConcurrentDictionary<string, (ExperimentDescriptor Descriptor, IFederatedAlgorithm Algorithm)> _cache = new(StringComparer.Ordinal);

    /// <summary>The experiment's descriptor and algorithm, or null when there is no such experiment.</summary>
    public (ExperimentDescriptor Descriptor, IFederatedAlgorithm Algorithm)? Get(string experimentId)
    {
        if (_cache.TryGetValue(experimentId, out var hit))
            return hit;
        if (log.GetExperiment(experimentId) is not { } record)
            return null;
        var descriptor = Wire.Deserialize<ExperimentDescriptor>(record.Descriptor);
        var algorithm = FederatedAlgorithms.Create(descriptor, ParameterBlocks.FromLengths(descriptor.BlockLengths));
        if (log.GetServerState(experimentId) is { } state)
            algorithm.ImportState(state);
        return _cache.GetOrAdd(experimentId, (descriptor, algorithm));
    }

    /// <summary>Drops the cached aggregator so the next use rebuilds it from the round log.</summary>
    public void Evict(string experimentId) => _cache.TryRemove(experimentId, out _);
}
