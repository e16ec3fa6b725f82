using MessagePack;

namespace Ferret.Core.Packets;

/// <summary>What a client did locally in a round: for the computation and loss columns of the comparison.</summary>
[MessagePackObject]
public sealed class TrainingStats
{
    /// <summary>Mean training loss over the round's local passes.</summary>
    [Key(0)]
    public double Loss { get; set; }

    [Key(1)]
    public int ForwardPasses { get; set; }

    [Key(2)]
    public int BackwardPasses { get; set; }

    /// <summary>Wall time of local training and encoding, seconds.</summary>
    [Key(3)]
    public double ComputeSeconds { get; set; }
}

/// <summary>A client's packet for one round. One subclass per algorithm family; all travel as MessagePack.</summary>
[Union(0, typeof(FerretUpdate))]
[Union(1, typeof(SeedScalarsUpdate))]
[Union(2, typeof(FullDeltaUpdate))]
public abstract class ClientUpdate
{
    public const int CurrentVersion = 1;

    [Key(0)]
    public int Version { get; set; } = CurrentVersion;

    [Key(1)]
    public string ExperimentId { get; set; } = "";

    [Key(2)]
    public int Round { get; set; }

    /// <summary>Local training samples, for sample-count weighting.</summary>
    [Key(3)]
    public long SampleCount { get; set; }

    [Key(4)]
    public TrainingStats Stats { get; set; } = new();
}

/// <summary>Ferret: sparse (seed index, block, gamma) triples as parallel arrays.</summary>
[MessagePackObject]
public sealed class FerretUpdate : ClientUpdate
{
    [Key(5)]
    [MessagePackFormatter(typeof(RawUInt16IndexFormatter))]
    public int[] SeedIndices { get; set; } = [];

    [Key(6)]
    [MessagePackFormatter(typeof(RunLengthInt32Formatter))]
    public int[] Blocks { get; set; } = [];

    [Key(7)]
    [MessagePackFormatter(typeof(RawFloat32Formatter))]
    public float[] Gammas { get; set; } = [];
}

/// <summary>FedKSeed: accumulated zeroth-order scalars of the seeds the client touched.</summary>
[MessagePackObject]
public sealed class SeedScalarsUpdate : ClientUpdate
{
    [Key(5)]
    [MessagePackFormatter(typeof(RawUInt16IndexFormatter))]
    public int[] SeedIndices { get; set; } = [];

    [Key(6)]
    [MessagePackFormatter(typeof(RawFloat32Formatter))]
    public float[] Scalars { get; set; } = [];
}

/// <summary>FedAvg and FedZO: the full local update <c>delta = w_before - w_after</c>.</summary>
[MessagePackObject]
public sealed class FullDeltaUpdate : ClientUpdate
{
    [Key(5)]
    [MessagePackFormatter(typeof(RawFloat32Formatter))]
    public float[] Delta { get; set; } = [];
}
