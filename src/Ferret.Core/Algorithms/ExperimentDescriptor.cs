using Ferret.Core.Aggregation;
using Ferret.Core.Parameters;
using Ferret.Core.Randomness;
using MessagePack;

namespace Ferret.Core.Algorithms;

/// <summary>Hyper-parameters of an experiment. Defaults are Ferret's reference setting (algorithms.md).</summary>
[MessagePackObject]
public sealed class AlgorithmSettings
{
    /// <summary>Local optimizer steps per round (T). FedKSeed and FedZO take zeroth-order steps.</summary>
    [Key(0)]
    public int LocalSteps { get; set; } = 10;

    /// <summary>Micro-batches accumulated per first-order step (n_accum).</summary>
    [Key(1)]
    public int MicroBatches { get; set; } = 4;

    /// <summary>Local learning rate (eta).</summary>
    [Key(2)]
    public double LocalLearningRate { get; set; } = 1e-4;

    /// <summary>Candidate seeds K (Ferret 200, FedKSeed 4096).</summary>
    [Key(3)]
    public int CandidateSeeds { get; set; } = 200;

    [Key(4)]
    public BasisDistribution Distribution { get; set; } = BasisDistribution.Uniform;

    [Key(5)]
    public ScheduleKind ServerSchedule { get; set; } = ScheduleKind.Constant;

    /// <summary>Server learning rate at round 1 (slr_max): 10 for Natural Instructions, 3 for Dolly.</summary>
    [Key(6)]
    public double ServerLearningRate { get; set; } = 10.0;

    /// <summary>Server learning rate at the last round for annealing schedules (slr_min).</summary>
    [Key(7)]
    public double ServerLearningRateMin { get; set; }

    /// <summary>Server momentum mu of the seed pool.</summary>
    [Key(8)]
    public double ServerMomentum { get; set; }

    /// <summary>Per-seed clipping norm (the reference clips at 10).</summary>
    [Key(9)]
    public double ClipNorm { get; set; } = 10.0;

    [Key(10)]
    public ClientWeighting Weighting { get; set; } = ClientWeighting.Equal;

    /// <summary>Perturbation size of the zeroth-order baselines.</summary>
    [Key(11)]
    public double ZerothOrderEpsilon { get; set; } = 5e-4;

    /// <summary>Random directions averaged per FedZO step (b).</summary>
    [Key(12)]
    public int ZerothOrderDirections { get; set; } = 1;

    /// <summary>Largest |value| accepted in a packet; anything beyond is rejected as absurd.</summary>
    [Key(13)]
    public double MaxAbsPacketValue { get; set; } = 1e8;

    /// <summary>Global (server) learning rate of FedAvg and FedZO's averaged delta (eta_g).</summary>
    [Key(14)]
    public double GlobalLearningRate { get; set; } = 1.0;

    public LearningRateSchedule Schedule(int rounds) => new(ServerSchedule, ServerLearningRate, ServerLearningRateMin, rounds);

    /// <summary>Checks every field; the message names the setting and its value.</summary>
    public void Validate()
    {
        static void Require(bool ok, string name, object value, string rule)
        {
            if (!ok)
                throw new ArgumentException($"Setting '{name}' = {value} is invalid: {rule}.");
        }
        Require(LocalSteps >= 1, nameof(LocalSteps), LocalSteps, "at least 1");
        Require(MicroBatches >= 1, nameof(MicroBatches), MicroBatches, "at least 1");
        Require(double.IsFinite(LocalLearningRate) && LocalLearningRate >= 0, nameof(LocalLearningRate), LocalLearningRate, "finite, >= 0");
        Require(CandidateSeeds is >= 2 and <= 65536, nameof(CandidateSeeds), CandidateSeeds, "2 to 65,536 (seed indices travel as 16 bits)");
        Require(double.IsFinite(ServerLearningRate) && ServerLearningRate >= 0, nameof(ServerLearningRate), ServerLearningRate, "finite, >= 0");
        Require(double.IsFinite(ServerLearningRateMin) && ServerLearningRateMin >= 0, nameof(ServerLearningRateMin), ServerLearningRateMin, "finite, >= 0");
        Require(ServerMomentum is >= 0 and < 1, nameof(ServerMomentum), ServerMomentum, "in [0, 1)");
        Require(ClipNorm > 0 && double.IsFinite(ClipNorm), nameof(ClipNorm), ClipNorm, "positive");
        Require(ZerothOrderEpsilon > 0 && double.IsFinite(ZerothOrderEpsilon), nameof(ZerothOrderEpsilon), ZerothOrderEpsilon, "positive");
        Require(ZerothOrderDirections >= 1, nameof(ZerothOrderDirections), ZerothOrderDirections, "at least 1");
        Require(MaxAbsPacketValue > 0, nameof(MaxAbsPacketValue), MaxAbsPacketValue, "positive");
        Require(double.IsFinite(GlobalLearningRate) && GlobalLearningRate > 0, nameof(GlobalLearningRate), GlobalLearningRate, "positive");
    }
}

/// <summary>
/// Everything a participant needs to take part in an experiment: the algorithm and its settings, the
/// candidate seeds, the block partition and the fingerprint of the artifact the model starts from.
/// </summary>
[MessagePackObject]
public sealed class ExperimentDescriptor
{
    public const int CurrentVersion = 1;

    [Key(0)]
    public int Version { get; set; } = CurrentVersion;

    [Key(1)]
    public string Id { get; set; } = "";

    /// <summary><c>ferret</c>, <c>fedkseed</c>, <c>fedzo</c> or <c>fedavg</c>.</summary>
    [Key(2)]
    public string Algorithm { get; set; } = FederatedAlgorithms.Ferret;

    [Key(3)]
    public AlgorithmSettings Settings { get; set; } = new();

    [Key(4)]
    public ulong ExperimentSeed { get; set; }

    /// <summary>The K candidate seeds, listed so no client has to derive them.</summary>
    [Key(5)]
    public ulong[] CandidateSeeds { get; set; } = [];

    [Key(6)]
    public long[] BlockOffsets { get; set; } = [];

    [Key(7)]
    public long[] BlockLengths { get; set; } = [];

    /// <summary>Model fingerprint of the initial parameters.</summary>
    [Key(8)]
    public string ArtifactFingerprint { get; set; } = "";

    [Key(9)]
    public long ParameterCount { get; set; }

    [Key(10)]
    public int Rounds { get; set; } = 12;

    /// <summary>Fraction m of clients sampled per round.</summary>
    [Key(11)]
    public double Fraction { get; set; } = 0.05;

    /// <summary>Connected, eligible clients a round waits for before it opens.</summary>
    [Key(12)]
    public int MinClients { get; set; } = 1;

    /// <summary>Seconds a round waits for packets after its assignments go out; whatever arrived by then is aggregated.</summary>
    [Key(13)]
    public int RoundDeadlineSeconds { get; set; } = 600;

    /// <summary>Secure aggregation and differential privacy (null: packets in the clear, no noise).</summary>
    [Key(14)]
    public Privacy.PrivacySettings? Privacy { get; set; }

    /// <summary>A descriptor with the candidate seeds derived from the experiment seed and the layout's block partition.</summary>
    public static ExperimentDescriptor Create(string id, string algorithm, AlgorithmSettings settings, ulong experimentSeed,
        ParameterBlocks blocks, string artifactFingerprint, int rounds, double fraction)
    {
        ArgumentNullException.ThrowIfNull(settings);
        ArgumentNullException.ThrowIfNull(blocks);
        settings.Validate();
        var d = new ExperimentDescriptor
        {
            Id = id,
            Algorithm = algorithm,
            Settings = settings,
            ExperimentSeed = experimentSeed,
            CandidateSeeds = SharedRandomness.CandidateSeeds(experimentSeed, settings.CandidateSeeds),
            BlockOffsets = blocks.Blocks.Select(b => b.Offset).ToArray(),
            BlockLengths = blocks.Blocks.Select(b => b.Length).ToArray(),
            ArtifactFingerprint = artifactFingerprint,
            ParameterCount = blocks.TotalLength,
            Rounds = rounds,
            Fraction = fraction,
        };
        d.Validate();
        return d;
    }

    /// <summary>Checks the descriptor is self-consistent; errors name the field.</summary>
    public void Validate()
    {
        if (Version != CurrentVersion)
            throw new ArgumentException($"Experiment descriptor version {Version} is not supported (expected {CurrentVersion}).");
        if (string.IsNullOrWhiteSpace(Id))
            throw new ArgumentException("Experiment descriptor field 'Id' is empty.");
        if (!FederatedAlgorithms.Names.Contains(Algorithm))
            throw new ArgumentException($"Experiment descriptor field 'Algorithm' = '{Algorithm}': expected one of {string.Join(", ", FederatedAlgorithms.Names)}.");
        Settings.Validate();
        if (CandidateSeeds.Length != Settings.CandidateSeeds)
            throw new ArgumentException($"Experiment descriptor lists {CandidateSeeds.Length} candidate seeds; its settings say K = {Settings.CandidateSeeds}.");
        if (BlockOffsets.Length == 0 || BlockOffsets.Length != BlockLengths.Length)
            throw new ArgumentException($"Experiment descriptor has {BlockOffsets.Length} block offsets and {BlockLengths.Length} block lengths.");
        if (Rounds < 1)
            throw new ArgumentException($"Experiment descriptor field 'Rounds' = {Rounds}: at least 1.");
        if (!(Fraction is > 0 and <= 1))
            throw new ArgumentException($"Experiment descriptor field 'Fraction' = {Fraction}: in (0, 1].");
        if (MinClients is < 1 or > 1_000_000)
            throw new ArgumentException($"Experiment descriptor field 'MinClients' = {MinClients}: 1 to 1,000,000.");
        if (RoundDeadlineSeconds is < 1 or > 7 * 24 * 3600)
            throw new ArgumentException($"Experiment descriptor field 'RoundDeadlineSeconds' = {RoundDeadlineSeconds}: 1 second to 7 days.");
        Privacy?.Validate(Algorithm, Settings.Weighting);
        if (ParameterCount != BlockLengths.Sum())
            throw new ArgumentException($"Experiment descriptor: blocks cover {BlockLengths.Sum()} parameters, ParameterCount says {ParameterCount}.");
    }

    /// <summary>The block partition over a layout, checked against it.</summary>
    public ParameterBlocks Blocks(ParameterLayout layout) =>
        ParameterBlocks.FromRanges(layout, BlockOffsets.Zip(BlockLengths, (o, l) => (o, l)).ToArray());
}
