namespace Ferret.Core.Algorithms;

/// <summary>
/// The most a valid packet of an experiment can be, from the experiment's shapes alone: what the door
/// allows a caller to send, buffer and decode before any other check.
/// </summary>
public static class PacketLimits
{
    /// <summary>Room for the envelope (ids, round, counts, training stats, MessagePack headers).</summary>
    public const int EnvelopeBytes = 4096;

    /// <summary>Largest number of (seed, block, value) entries a packet of this experiment can carry.</summary>
    public static long MaxEntries(ExperimentDescriptor experiment)
    {
        ArgumentNullException.ThrowIfNull(experiment);
        long k = experiment.Settings.CandidateSeeds;
        return experiment.Algorithm switch
        {
            FederatedAlgorithms.Ferret => k * experiment.BlockLengths.Length,
            FederatedAlgorithms.FedKSeed => k,
            _ => experiment.ParameterCount,
        };
    }

    /// <summary>Bytes of the largest valid packet: a seed index (2 bytes) and a float32 per entry, block runs, the envelope.</summary>
    public static long MaxPacketBytes(ExperimentDescriptor experiment)
    {
        ArgumentNullException.ThrowIfNull(experiment);
        long entries = MaxEntries(experiment);
        return experiment.Algorithm switch
        {
            FederatedAlgorithms.Ferret => (6 * entries) + (10L * experiment.BlockLengths.Length) + EnvelopeBytes,
            FederatedAlgorithms.FedKSeed => (6 * entries) + EnvelopeBytes,
            _ => (4 * entries) + EnvelopeBytes,
        };
    }

    /// <summary>
    /// What a run-length field of a packet of <paramref name="packetBytes"/> bytes may expand to: no more
    /// entries than the experiment has, nor than the packet has bytes for (each entry also carries 6 bytes).
    /// </summary>
    public static int MaxDecodedElements(ExperimentDescriptor experiment, long packetBytes)
    {
        ArgumentNullException.ThrowIfNull(experiment);
        if (experiment.Algorithm != FederatedAlgorithms.Ferret)
            return 0; // only Ferret packets carry run-length blocks
        return (int)Math.Min(Math.Min(MaxEntries(experiment), Math.Max(0, packetBytes) / 6), int.MaxValue);
    }
}
