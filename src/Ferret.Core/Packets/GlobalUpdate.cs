using MessagePack;

namespace Ferret.Core.Packets;

/// <summary>
/// The round's global update, computed once by the coordinator and applied by every participant. Everyone
/// who applies the same sequence of these to the same initial parameters holds the same model, bit for bit.
/// </summary>
[Union(0, typeof(SeedCoefficientsUpdate))]
[Union(1, typeof(SeedScalarsGlobalUpdate))]
[Union(2, typeof(FullDeltaGlobalUpdate))]
public abstract class GlobalUpdate
{
    public const int CurrentVersion = 1;

    [Key(0)]
    public int Version { get; set; } = CurrentVersion;

    [Key(1)]
    public string ExperimentId { get; set; } = "";

    [Key(2)]
    public int Round { get; set; }

    /// <summary>Clients aggregated into this update.</summary>
    [Key(3)]
    public int Contributors { get; set; }
}

/// <summary>Ferret: float32 coefficients <c>c_{k,b}</c>, sorted by block then seed index; <c>w_b -= sum_k c v_{k,b}</c>.</summary>
[MessagePackObject]
public sealed class SeedCoefficientsUpdate : GlobalUpdate
{
    [Key(4)]
    [MessagePackFormatter(typeof(RawUInt16IndexFormatter))]
    public int[] SeedIndices { get; set; } = [];

    [Key(5)]
    [MessagePackFormatter(typeof(RunLengthInt32Formatter))]
    public int[] Blocks { get; set; } = [];

    [Key(6)]
    [MessagePackFormatter(typeof(RawFloat32Formatter))]
    public float[] Coefficients { get; set; } = [];
}

/// <summary>FedKSeed: per-seed coefficients over the unit-variance stream; <c>w -= sum_k c_k z_k</c>, ascending k.</summary>
[MessagePackObject]
public sealed class SeedScalarsGlobalUpdate : GlobalUpdate
{
    [Key(4)]
    [MessagePackFormatter(typeof(RawUInt16IndexFormatter))]
    public int[] SeedIndices { get; set; } = [];

    [Key(5)]
    [MessagePackFormatter(typeof(RawFloat32Formatter))]
    public float[] Coefficients { get; set; } = [];
}

/// <summary>FedAvg and FedZO: <c>w -= delta</c> element-wise.</summary>
[MessagePackObject]
public sealed class FullDeltaGlobalUpdate : GlobalUpdate
{
    [Key(4)]
    [MessagePackFormatter(typeof(RawFloat32Formatter))]
    public float[] Delta { get; set; } = [];
}
