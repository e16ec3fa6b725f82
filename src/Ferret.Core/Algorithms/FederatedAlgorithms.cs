using Ferret.Core.Parameters;
using Ferret.Core.Projection;

namespace Ferret.Core.Algorithms;

/// <summary>The algorithms Ferret.NET runs, by name; adding one touches this table and its own file.</summary>
public static class FederatedAlgorithms
{
    public const string Ferret = "ferret";
    public const string FedKSeed = "fedkseed";
    public const string FedZo = "fedzo";
    public const string FedAvg = "fedavg";

    public static IReadOnlyList<string> Names { get; } = [Ferret, FedKSeed, FedZo, FedAvg];

    /// <summary>Builds the algorithm an experiment names, over the model's block partition.</summary>
    public static IFederatedAlgorithm Create(ExperimentDescriptor experiment, ParameterBlocks blocks, KernelOptions? kernels = null)
    {
        ArgumentNullException.ThrowIfNull(experiment);
        return experiment.Algorithm switch
        {
            Ferret => new FerretAlgorithm(experiment, blocks, kernels),
            FedKSeed => new FedKSeedAlgorithm(experiment, kernels),
            FedZo => new FedZoAlgorithm(experiment),
            FedAvg => new FedAvgAlgorithm(experiment),
            _ => throw new ArgumentException($"Unknown algorithm '{experiment.Algorithm}': expected one of {string.Join(", ", Names)}."),
        };
    }

    /// <summary>Reference settings of an algorithm (algorithms.md), to start from.</summary>
    public static AlgorithmSettings ReferenceSettings(string algorithm) => algorithm switch
    {
        Ferret => new AlgorithmSettings(),
        FedKSeed => new AlgorithmSettings { LocalSteps = 200, LocalLearningRate = 3e-7, CandidateSeeds = 4096, ZerothOrderEpsilon = 5e-4 },
        FedZo => new AlgorithmSettings { LocalSteps = 200, LocalLearningRate = 3e-7, ZerothOrderDirections = 1 },
        FedAvg => new AlgorithmSettings { LocalSteps = 10, MicroBatches = 4, LocalLearningRate = 3e-4, GlobalLearningRate = 1.0 },
        _ => throw new ArgumentException($"Unknown algorithm '{algorithm}': expected one of {string.Join(", ", Names)}."),
    };
}
