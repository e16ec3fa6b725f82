namespace Ferret.Coordinator.Persistence;

/// <summary>Where a private round stands: clients in the clear (central DP only), one of the four secure stages, or closed.</summary>
public enum PrivateStage
{
    /// <summary>Differential privacy without secure aggregation: packets arrive as usual and are clipped and noised at aggregation.</summary>
    Packets,
    AdvertiseKeys,
    ShareKeys,
    MaskedInput,
    Unmasking,

    /// <summary>No further stage message is accepted (the round is being unmasked, or is over).</summary>
    Closed,
}

/// <summary>
/// What a private round fixed when it opened (the clients it was drawn from, the clip norm) and the secure
/// stage it is in, with that stage's deadline.
/// </summary>
public sealed record PrivateRoundRecord(string ExperimentId, int Round, int Eligible, int Assigned, double ClipNorm, PrivateStage Stage, DateTimeOffset StageDeadlineUtc);

/// <summary>What became of a stage message that reached the store.</summary>
public enum StageMessageOutcome
{
    Accepted,
    Duplicate,
    WrongStage,
    NoSuchRound,
}

/// <summary>
/// The durable part of private aggregation, beside the round log: per round the plan's public numbers and the
/// current secure stage, and the stage messages exactly as clients sent them (public keys, encrypted shares
/// with their commitments, revealed shares). Masked inputs are packets and live in the round log. Nothing here
/// is secret from the coordinator by design: it stores only what the protocol lets it see.
/// </summary>
public interface IPrivateRoundStore
{
    /// <summary>Records a private round before it opens (a record for a round that never opened is harmless and replaced).</summary>
    void OpenRound(PrivateRoundRecord record);

    PrivateRoundRecord? GetRound(string experimentId, int round);

    /// <summary>Moves a round from <paramref name="from"/> to <paramref name="to"/>; false when it was not at <paramref name="from"/>. After it returns, no message of the old stage is accepted.</summary>
    bool AdvanceStage(string experimentId, int round, PrivateStage from, PrivateStage to, DateTimeOffset deadlineUtc);

    /// <summary>Stores a client's message for a stage if the round is at that stage and the client has not sent one: decided atomically.</summary>
    StageMessageOutcome RecordMessage(string experimentId, int round, string clientId, PrivateStage stage, byte[] payload, DateTimeOffset receivedUtc);

    /// <summary>The messages of a stage, by client.</summary>
    IReadOnlyDictionary<string, byte[]> GetMessages(string experimentId, int round, PrivateStage stage);

    /// <summary>One client's message of a stage, or null.</summary>
    byte[]? GetMessage(string experimentId, int round, PrivateStage stage, string clientId);

    /// <summary>Who has sent a message of a stage (without the messages: the engine asks on every step).</summary>
    IReadOnlySet<string> Answered(string experimentId, int round, PrivateStage stage);

    /// <summary>Bytes of all stage messages of a round.</summary>
    long MessageBytes(string experimentId, int round);
}
