namespace Ferret.Coordinator.Persistence;

/// <summary>
/// A dashboard credential minted by an admin: an observer key (read-only), or an admin session redeemed from a
/// one-time sign-in link. Only its SHA-256 is stored.
/// </summary>
public sealed record AccessKeyRecord(string Id, string Label, string Role, DateTimeOffset CreatedUtc, DateTimeOffset? ExpiresUtc, bool Revoked);

/// <summary>A packet turned away at the door, as the rejection log keeps it.</summary>
public sealed record RejectionRecord(long Id, int? Round, string? ClientId, string Reason, long Bytes, DateTimeOffset AtUtc);

/// <summary>
/// One client's part in one experiment, summed over its assignments: the last round it was given, how often
/// it delivered, its last failure or miss (with the reason) and the last fingerprint it reported.
/// </summary>
public sealed record ExperimentClientRecord(
    string Id, string Name, string? Capabilities, bool Revoked, int? LastRound, AssignmentState? LastState, int Delivered, int Failures,
    int? LastFailureRound, AssignmentState? LastFailureState, string? LastFailureReason, int? FingerprintRound, string? Fingerprint, long Rejections);
