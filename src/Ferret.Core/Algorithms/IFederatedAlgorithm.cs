using Ferret.Core.Packets;

namespace Ferret.Core.Algorithms;

/// <summary>Why a client contributed nothing to a round.</summary>
public sealed record ClientFailure(string ClientId, string Reason);

/// <summary>The verdict on a packet at the door: accepted, or rejected with a reason for the sender and the log.</summary>
public readonly record struct PacketVerdict(bool Accepted, string? Reason)
{
    public static PacketVerdict Accept { get; } = new(true, null);

    public static PacketVerdict Reject(string reason) => new(false, reason);
}

/// <summary>
/// One federated algorithm, the shape of Flower's Strategy: the client turns a local update into a packet,
/// the coordinator checks packets and aggregates them (failures included) into a global update, and every
/// participant applies global updates. The round engine, the simulator and the tests drive only this.
/// </summary>
public interface IFederatedAlgorithm
{
    /// <summary>The algorithm's name as experiments spell it.</summary>
    string Name { get; }

    /// <summary>
    /// Client side: trains locally from the current global model and returns the round's packet. The model's
    /// parameters are back at their starting values on return (the global update is applied separately).
    /// </summary>
    ClientUpdate Train(int round, ILocalModel model, Random clientRandom, CancellationToken cancellationToken = default);

    /// <summary>Coordinator side: validates a packet against the experiment and the round.</summary>
    PacketVerdict Check(ClientUpdate update, int round);

    /// <summary>Coordinator side: aggregates the round's accepted packets into the global update and advances server state.</summary>
    GlobalUpdate Aggregate(int round, IReadOnlyList<ClientUpdate> updates, IReadOnlyList<ClientFailure> failures);

    /// <summary>Every participant: applies a global update to the flat parameters, bit-exactly.</summary>
    void Apply(GlobalUpdate update, Memory<float> parameters);

    /// <summary>Server state after the last aggregation (null when the algorithm keeps none), for the durable log.</summary>
    byte[]? ExportState();

    /// <summary>Restores server state saved by <see cref="ExportState"/>.</summary>
    void ImportState(ReadOnlySpan<byte> state);
}
