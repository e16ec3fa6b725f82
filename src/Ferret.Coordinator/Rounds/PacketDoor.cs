using Ferret.Core.Algorithms;
using Ferret.Core.Packets;
using Microsoft.Extensions.Options;

namespace Ferret.Coordinator.Rounds;

/// <summary>
/// The checks every packet passes before it is stored, and again before it is aggregated: size against the
/// experiment's shapes, a bounded decode, canonical encoding (the packet equals its own re-encoding), the
/// coordinator's cap on the claimed sample count, then the algorithm's own checks (every value finite and
/// bounded). Never throws for what a caller sent.
/// </summary>
public sealed class PacketDoor(IOptions<CoordinatorOptions> options)
{
    /// <summary>The decoded packet, or the reason it is turned away.</summary>
    public (ClientUpdate? Update, string? Reason) Inspect(ExperimentDescriptor descriptor, IFederatedAlgorithm algorithm, int round, byte[]? packet)
    {
        ArgumentNullException.ThrowIfNull(descriptor);
        ArgumentNullException.ThrowIfNull(algorithm);
        if (packet is null || packet.Length == 0)
            return (null, "empty packet");
        long max = PacketLimits.MaxPacketBytes(descriptor);
        if (packet.LongLength > max)
            return (null, $"packet of {packet.LongLength} bytes exceeds the {max} bytes a {descriptor.Algorithm} packet of this experiment can take");
        ClientUpdate update;
        try
        {
            update = Wire.Deserialize<ClientUpdate>(packet, PacketLimits.MaxDecodedElements(descriptor, packet.LongLength));
        }
        catch (InvalidDataException e)
        {
            return (null, $"malformed packet: {e.Message}");
        }
        // Canonical: exactly the bytes Ferret.NET's encoder writes for this packet (minimal integers, merged runs,
        // no unknown fields, nothing after it), so what is stored and hashed is what was checked.
        var canonical = Wire.Serialize(update);
        if (!canonical.AsSpan().SequenceEqual(packet))
        {
            int at = canonical.AsSpan().CommonPrefixLength(packet);
            return (null, $"packet is not canonical MessagePack: it differs from its own re-encoding at byte {at} ({packet.Length} bytes sent, {canonical.Length} re-encoded)");
        }
        long cap = options.Value.MaxSampleCount;
        if (update.SampleCount > cap)
            return (null, $"sample count {update.SampleCount} exceeds this coordinator's cap of {cap}");
        PacketVerdict verdict;
        try
        {
            verdict = algorithm.Check(update, round);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // A check that throws is a bug on our side, but the packet is still turned away with a reason.
            return (null, $"packet could not be checked ({e.GetType().Name}): {e.Message}");
        }
        return verdict.Accepted ? (update, null) : (null, verdict.Reason ?? "rejected by the algorithm's checks");
    }
}
