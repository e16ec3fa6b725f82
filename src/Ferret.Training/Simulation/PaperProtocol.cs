using Ferret.Core.Algorithms;
using Ferret.Training.Data;

namespace Ferret.Training.Simulation;

/// <summary>
/// The Ferret paper's federated settings as one named choice (Appendix C.1): per algorithm its local and
/// server hyper-parameters and rounds, the fraction of clients per round, and how data is spread over clients.
/// With a real pretrained model and the real data set, <c>--preset ni</c> or <c>--preset dolly</c> runs the
/// paper's protocol.
/// </summary>
public sealed record PaperProtocol(
    string Name, string Description, double Fraction, int? Clients, PartitionScheme Partition, double DirichletAlpha,
    int FerretRounds, int BaselineRounds, double FerretServerLearningRate)
{
    /// <summary>
    /// Natural Instructions: one training task per client (so as many clients as tasks), 5 % per round, Ferret
    /// 12 rounds with server lr 10, the baselines 40 rounds.
    /// </summary>
    public static PaperProtocol NaturalInstructions { get; } = new("ni",
        "Natural Instructions: one task per client, 5 % of clients per round; Ferret 12 rounds (slr 10), baselines 40",
        0.05, null, PartitionScheme.ByCategory, 0.5, 12, 40, 10.0);

    /// <summary>Dolly-15K: 200 clients with Dirichlet(0.5) label skew, 5 % per round, Ferret 20 rounds with server lr 3, the baselines 60.</summary>
    public static PaperProtocol Dolly { get; } = new("dolly",
        "Dolly-15K: 200 clients, Dirichlet(0.5) label skew, 5 % of clients per round; Ferret 20 rounds (slr 3), baselines 60",
        0.05, 200, PartitionScheme.Dirichlet, 0.5, 20, 60, 3.0);

    public static IReadOnlyList<PaperProtocol> All { get; } = [NaturalInstructions, Dolly];

    public static PaperProtocol Get(string name) =>
        All.FirstOrDefault(p => string.Equals(p.Name, name, StringComparison.OrdinalIgnoreCase))
        ?? throw new ArgumentException($"Unknown preset '{name}': expected one of {string.Join(", ", All.Select(p => p.Name))}.");

    /// <summary>The paper's rounds for an algorithm: Ferret's own, or the baselines'.</summary>
    public int Rounds(string algorithm) => algorithm == FederatedAlgorithms.Ferret ? FerretRounds : BaselineRounds;

    /// <summary>
    /// The paper's hyper-parameters for an algorithm. Ferret: T = 10 steps of 4 accumulated samples, eta 1e-4,
    /// K = 200, the protocol's server lr. FedKSeed: 200 zeroth-order steps, eta 3e-7, K = 4096. FedZO: 200 steps,
    /// eta 3e-7. FedAvg: the reference local loop (the paper trains one local epoch; eta 3e-4 is its LLaMA2 value).
    /// </summary>
    public AlgorithmSettings Settings(string algorithm)
    {
        var settings = FederatedAlgorithms.ReferenceSettings(algorithm);
        if (algorithm == FederatedAlgorithms.Ferret)
        {
            settings.LocalSteps = 10;
            settings.MicroBatches = 4;
            settings.LocalLearningRate = 1e-4;
            settings.CandidateSeeds = 200;
            settings.ServerLearningRate = FerretServerLearningRate;
        }
        return settings;
    }

    /// <summary>Clients for a data set: the protocol's count, or one per category (task) when it spreads one task per client.</summary>
    public int ClientsFor(IReadOnlyList<InstructionExample> train)
    {
        ArgumentNullException.ThrowIfNull(train);
        return Clients ?? train.Select(e => e.Category).Distinct(StringComparer.Ordinal).Count();
    }
}
