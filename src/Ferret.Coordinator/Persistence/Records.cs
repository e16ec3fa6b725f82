namespace Ferret.Coordinator.Persistence;

public enum ExperimentState
{
    Created,
    Running,
    Completed,
    Stopped,
}

public enum RoundState
{
    /// <summary>Assignments sent; packets arriving.</summary>
    Open,

    /// <summary>Global update persisted: the round can never be lost.</summary>
    Completed,

    /// <summary>Abandoned (no packet arrived, or the experiment stopped); the next round starts from the same model.</summary>
    Abandoned,
}

public enum AssignmentState
{
    Assigned,
    Received,
    Rejected,
    Failed,
    Missed,
}

/// <summary>An experiment as the round log stores it; the descriptor is the MessagePack contract clients receive.</summary>
public sealed record ExperimentRecord(
    string Id, string Name, string Algorithm, byte[] Descriptor, ExperimentState State, int Rounds,
    string ArtifactFingerprint, DateTimeOffset CreatedUtc, DateTimeOffset? EndedUtc);

/// <summary>One round of one experiment.</summary>
public sealed record RoundRecord(
    string ExperimentId, int Round, RoundState State, DateTimeOffset OpenedUtc, DateTimeOffset DeadlineUtc,
    DateTimeOffset? ClosedUtc, byte[]? GlobalUpdate, int Aggregated, int Missing, string? MetricsJson);

/// <summary>A client's part in a round: what it was asked to do and what arrived.</summary>
public sealed record AssignmentRecord(
    string ExperimentId, int Round, string ClientId, AssignmentState State, string? PacketSha256, long PacketBytes,
    DateTimeOffset? ReceivedUtc, string? Reason, double? TrainLoss);

/// <summary>An enrolled edge client. The bearer token itself is never stored, only its SHA-256.</summary>
public sealed record ClientRecord(string Id, string Name, DateTimeOffset EnrolledUtc, string? Capabilities, bool Revoked);

/// <summary>A fingerprint a participant reported after applying a round's global update.</summary>
public sealed record FingerprintRecord(string ExperimentId, int Round, string ClientId, string Fingerprint, DateTimeOffset ReportedUtc);

/// <summary>Where an experiment's rounds stand: the open round (if any), the highest round number, the last completed round (0 for none).</summary>
public sealed record RoundProgress(RoundRecord? Open, int LastRound, int LastCompleted);
