using MessagePack;

namespace Ferret.Core.Protocol;

/// <summary>
/// Names of the rounds hub (SignalR, MessagePack protocol) shared by the coordinator, the edge client and
/// observers: the methods a caller invokes and the messages the coordinator pushes.
/// </summary>
public static class RoundsProtocol
{
    public const string Path = "/hubs/rounds";

    /// <summary>Packets at most this large travel in one hub message; larger ones stream in chunks of this size.</summary>
    public const int ChunkBytes = 1024 * 1024;

    // ---- invoked by callers ----------------------------------------------------------------------------

    /// <summary><c>Join(experimentId, capabilitiesJson) -> JoinResult</c>: a client takes part in an experiment.</summary>
    public const string Join = "Join";

    /// <summary><c>Subscribe(experimentId)</c>: an observer receives the experiment's live events.</summary>
    public const string Subscribe = "Subscribe";

    /// <summary><c>SubmitUpdate(experimentId, round, packet) -> SubmitResult</c>: a packet in one message.</summary>
    public const string SubmitUpdate = "SubmitUpdate";

    /// <summary><c>SubmitUpdateStream(experimentId, round, chunks) -> SubmitResult</c>: a large packet streamed in chunks.</summary>
    public const string SubmitUpdateStream = "SubmitUpdateStream";

    /// <summary><c>ReportFailure(experimentId, round, reason)</c>: a client could not train its assignment.</summary>
    public const string ReportFailure = "ReportFailure";

    /// <summary><c>ReportFingerprint(experimentId, round, fingerprint) -> bool</c>: true when every report so far agrees.</summary>
    public const string ReportFingerprint = "ReportFingerprint";

    /// <summary>
    /// <c>ReportDeviceCheck(experimentId, device, passed, detail)</c>: the outcome of the client's start-up device self-test
    /// (<c>ferret doctor</c>); a client whose device failed reports why and does not join.
    /// </summary>
    public const string ReportDeviceCheck = "ReportDeviceCheck";

    // ---- secure aggregation (experiments with secureAggregation), invoked by clients, each -> SubmitResult ----

    /// <summary><c>AdvertiseKeys(experimentId, round, AdvertisedKeys bytes)</c>: stage 0, the round's two public keys.</summary>
    public const string AdvertiseKeys = "AdvertiseKeys";

    /// <summary><c>ShareKeys(experimentId, round, ShareKeysResponse bytes)</c>: stage 1, encrypted shares for the neighbours.</summary>
    public const string ShareKeys = "ShareKeys";

    /// <summary><c>SubmitMaskedInput(experimentId, round, MaskedInput bytes)</c>: stage 2, the masked, quantized gamma.</summary>
    public const string SubmitMaskedInput = "SubmitMaskedInput";

    /// <summary><c>Unmask(experimentId, round, UnmaskResponse bytes)</c>: stage 3, the shares that remove the masks.</summary>
    public const string Unmask = "Unmask";

    // ---- pushed by the coordinator ---------------------------------------------------------------------

    /// <summary>A <see cref="Privacy.ShareKeysRequest"/>, to one client of a secure round.</summary>
    public const string ShareKeysRequest = "ShareKeysRequest";

    /// <summary>A <see cref="Privacy.MaskedInputRequest"/>, to one client of a secure round.</summary>
    public const string MaskedInputRequest = "MaskedInputRequest";

    /// <summary>A <see cref="Privacy.UnmaskRequest"/>, to one client of a secure round.</summary>
    public const string UnmaskRequest = "UnmaskRequest";

    /// <summary>A <see cref="RoundAssignment"/>, sent to the assigned client only.</summary>
    public const string Assignment = "Assignment";

    /// <summary>A <see cref="RoundEvent"/>, sent to the experiment's participants and observers.</summary>
    public const string RoundEvent = "RoundEvent";

    /// <summary>A <see cref="ClientEvent"/>, sent to the experiment's participants and observers.</summary>
    public const string ClientEvent = "ClientEvent";
}

/// <summary>What a client learns when it joins an experiment.</summary>
[MessagePackObject]
public sealed class JoinResult
{
    /// <summary>The MessagePack <see cref="Algorithms.ExperimentDescriptor"/>.</summary>
    [Key(0)]
    public byte[] Descriptor { get; set; } = [];

    /// <summary><c>Created</c>, <c>Running</c>, <c>Completed</c> or <c>Stopped</c>.</summary>
    [Key(1)]
    public string State { get; set; } = "";

    /// <summary>The last round whose global update is in the log (0 before the first).</summary>
    [Key(2)]
    public int LastCompletedRound { get; set; }

    /// <summary>The client's open assignment, when a round it was assigned to is still waiting for its packet.</summary>
    [Key(3)]
    public RoundAssignment? OpenAssignment { get; set; }
}

/// <summary>A round's work for one client: train from the model after <see cref="BaseRound"/> and answer before the deadline.</summary>
[MessagePackObject]
public sealed class RoundAssignment
{
    [Key(0)]
    public string ExperimentId { get; set; } = "";

    [Key(1)]
    public int Round { get; set; }

    /// <summary>The last completed round: the model to train from is the initial one with every update up to it applied.</summary>
    [Key(2)]
    public int BaseRound { get; set; }

    [Key(3)]
    public DateTimeOffset DeadlineUtc { get; set; }

    /// <summary>Set in private experiments: what the client needs to encode its gamma for this round.</summary>
    [Key(4)]
    public PrivateRoundInfo? Privacy { get; set; }
}

/// <summary>
/// The public numbers of a private round a client encodes with (<see cref="Privacy.PrivacyPlan.Create"/>): the
/// round's size, the clients it was drawn from and the clip norm; for secure rounds, when the keys are due.
/// </summary>
[MessagePackObject]
public sealed class PrivateRoundInfo
{
    [Key(0)]
    public int Assigned { get; set; }

    [Key(1)]
    public int Eligible { get; set; }

    [Key(2)]
    public double ClipNorm { get; set; }

    /// <summary>True when the round runs secure aggregation: advertise keys now, then answer the stage requests.</summary>
    [Key(3)]
    public bool Secure { get; set; }

    [Key(4)]
    public DateTimeOffset KeysDeadlineUtc { get; set; }
}

/// <summary>The answer to a submitted packet: accepted, or rejected with the reason.</summary>
[MessagePackObject]
public sealed class SubmitResult
{
    [Key(0)]
    public bool Accepted { get; set; }

    [Key(1)]
    public string? Reason { get; set; }
}

/// <summary>A round's state change, for participants and observers.</summary>
[MessagePackObject]
public sealed class RoundEvent
{
    public const string Opened = "opened";
    public const string Completed = "completed";
    public const string Abandoned = "abandoned";

    /// <summary>A secure round moved to its next stage (the detail names it and who answered the last one).</summary>
    public const string Stage = "stage";

    [Key(0)]
    public string ExperimentId { get; set; } = "";

    [Key(1)]
    public int Round { get; set; }

    /// <summary><c>opened</c>, <c>stage</c>, <c>completed</c> or <c>abandoned</c>.</summary>
    [Key(2)]
    public string Kind { get; set; } = "";

    /// <summary>The last completed round before this one; a participant at it may apply this round's update directly.</summary>
    [Key(3)]
    public int BaseRound { get; set; }

    [Key(4)]
    public int Assigned { get; set; }

    [Key(5)]
    public int Aggregated { get; set; }

    /// <summary>Assigned clients whose packet did not count (missed, failed or rejected).</summary>
    [Key(6)]
    public int Missing { get; set; }

    [Key(7)]
    public double? MeanTrainLoss { get; set; }

    /// <summary>Bytes of all accepted packets of the round.</summary>
    [Key(8)]
    public long BytesUp { get; set; }

    /// <summary>Bytes of the global update.</summary>
    [Key(9)]
    public long BytesDown { get; set; }

    /// <summary>Seconds from opening to closing (completed and abandoned rounds).</summary>
    [Key(10)]
    public double Seconds { get; set; }

    /// <summary>The MessagePack global update, inline when small; otherwise fetch it from the updates endpoint.</summary>
    [Key(11)]
    public byte[]? GlobalUpdate { get; set; }

    /// <summary>True on the event that ends the experiment (its last round, or a stop).</summary>
    [Key(12)]
    public bool ExperimentEnded { get; set; }

    [Key(13)]
    public DateTimeOffset AtUtc { get; set; }

    [Key(14)]
    public string? Detail { get; set; }

    /// <summary>When the round closes at the latest (on <c>opened</c>).</summary>
    [Key(15)]
    public DateTimeOffset? DeadlineUtc { get; set; }

    /// <summary>The clients assigned to the round, in id order (on <c>opened</c>).</summary>
    [Key(16)]
    public string[]? AssignedClients { get; set; }

    /// <summary>Private experiments: the epsilon spent once this round's update is out (at the experiment's delta).</summary>
    [Key(17)]
    public double? Epsilon { get; set; }
}

/// <summary>A client's status change, pushed to the experiment's observers.</summary>
[MessagePackObject]
public sealed class ClientEvent
{
    public const string Joined = "joined";
    public const string Left = "left";
    public const string Received = "received";
    public const string Rejected = "rejected";
    public const string Failed = "failed";
    public const string Fingerprint = "fingerprint";
    public const string DeviceCheck = "device-check";

    [Key(0)]
    public string ExperimentId { get; set; } = "";

    [Key(1)]
    public int Round { get; set; }

    [Key(2)]
    public string ClientId { get; set; } = "";

    /// <summary><c>joined</c>, <c>left</c>, <c>received</c>, <c>rejected</c>, <c>failed</c>, <c>fingerprint</c> or <c>device-check</c>; observers show other kinds as they come, with their detail.</summary>
    [Key(3)]
    public string Kind { get; set; } = "";

    [Key(4)]
    public long Bytes { get; set; }

    [Key(5)]
    public double? TrainLoss { get; set; }

    /// <summary>The reason (rejected, failed, left), or the fingerprint (prefixed <c>MISMATCH </c> when reports disagree).</summary>
    [Key(6)]
    public string? Detail { get; set; }

    /// <summary>The name the client enrolled with.</summary>
    [Key(7)]
    public string? ClientName { get; set; }

    [Key(8)]
    public DateTimeOffset AtUtc { get; set; }
}
