namespace Ferret.Coordinator.Persistence;

/// <summary>What became of a packet that reached the round log.</summary>
public enum PacketOutcome
{
    Accepted,
    NotAssigned,
    Duplicate,
    RoundClosed,
}

/// <summary>
/// The coordinator's durable round log: experiments, rounds, assignments, received packets, global updates,
/// fingerprints and rejections, on SQLite (one machine) or PostgreSQL (several coordinator instances). Every
/// state change that matters is one transaction, and round transitions are compare-and-set, so a coordinator
/// killed at any moment (or an instance that lost its lease mid-step) leaves every completed round intact and
/// every open round resumable from the packets that had arrived.
/// </summary>
public interface IRoundLog
{
    /// <summary>Where the log lives (kind and place, never a password).</summary>
    string Description { get; }

    // ---- experiments -------------------------------------------------------------------------------

    /// <exception cref="InvalidOperationException">An experiment with that id exists.</exception>
    void AddExperiment(ExperimentRecord experiment);

    ExperimentRecord? GetExperiment(string id);

    IReadOnlyList<ExperimentRecord> ListExperiments();

    /// <exception cref="KeyNotFoundException">No such experiment.</exception>
    void SetExperimentState(string id, ExperimentState state, DateTimeOffset? endedUtc = null);

    /// <summary>The aggregator's state after the last completed round (seed pool, momentum), or null before round 1.</summary>
    byte[]? GetServerState(string experimentId);

    // ---- rounds ------------------------------------------------------------------------------------

    /// <summary>Opens a round and its assignments in one transaction; a round that exists already is refused.</summary>
    void OpenRound(string experimentId, int round, DateTimeOffset openedUtc, DateTimeOffset deadlineUtc, IReadOnlyCollection<string> clientIds);

    /// <summary>
    /// Stores a validated packet if and only if its sender is assigned to this open round and has not answered
    /// yet: one packet per client per round, decided atomically whichever instance received it.
    /// </summary>
    PacketOutcome RecordPacket(string experimentId, int round, string clientId, byte[] packet, string packetSha256, double? trainLoss, DateTimeOffset receivedUtc);

    /// <summary>Marks an assigned client as failed (it reported an error, or disconnected mid-round).</summary>
    bool MarkAssignmentFailed(string experimentId, int round, string clientId, string reason);

    /// <summary>The packets received so far in a round, in client-id order (deterministic aggregation).</summary>
    IReadOnlyList<(string ClientId, byte[] Packet)> GetPackets(string experimentId, int round);

    /// <summary>
    /// Where a client stands in a round, in one indexed query: the round's state and deadline, and the client's
    /// assignment state (null when it is not assigned). Null when there is no such round. The door asks it
    /// before it reads a byte of a streamed packet.
    /// </summary>
    (RoundState Round, DateTimeOffset DeadlineUtc, AssignmentState? Assignment)? GetSubmissionState(string experimentId, int round, string clientId);

    /// <summary>
    /// Turns a stored packet of an open round away (it fails the checks it must pass to be aggregated): the
    /// assignment becomes rejected with the reason and the packet bytes are dropped. False when there was none.
    /// </summary>
    bool RejectStoredPacket(string experimentId, int round, string clientId, string reason);

    /// <summary>
    /// Completes an open round in one transaction: the global update and the aggregator's new state are stored,
    /// silent clients are marked missed, and the experiment completes after its last round. Nothing is
    /// broadcast before this returns. When <paramref name="aggregatedClients"/> is given, the round's received
    /// packets must be exactly those (a packet that arrived after they were read refuses the completion, so
    /// no accepted packet is ever left out of its round's update).
    /// </summary>
    /// <exception cref="InvalidOperationException">The round is not open, or its packets changed since they were read.</exception>
    void CompleteRound(string experimentId, int round, byte[] globalUpdate, byte[]? serverState, string? metricsJson, DateTimeOffset closedUtc,
        IReadOnlyCollection<string>? aggregatedClients = null);

    /// <summary>Closes an open round without a global update (nobody answered); the model stays as it was.</summary>
    void AbandonRound(string experimentId, int round, string reason, DateTimeOffset closedUtc);

    RoundRecord? GetRound(string experimentId, int round);

    /// <summary>Where an experiment's rounds stand, in two indexed queries (the round engine asks on every tick).</summary>
    RoundProgress GetProgress(string experimentId);

    IReadOnlyList<RoundRecord> GetRounds(string experimentId, bool includeUpdates = false);

    /// <summary>The completed global updates after <paramref name="afterRound"/>, in order: what a lagging client replays.</summary>
    IReadOnlyList<(int Round, byte[] GlobalUpdate)> GetGlobalUpdates(string experimentId, int afterRound);

    IReadOnlyList<AssignmentRecord> GetAssignments(string experimentId, int round);

    // ---- what clients report -----------------------------------------------------------------------

    void RecordRejection(string? experimentId, int? round, string? clientId, string reason, long bytes, DateTimeOffset atUtc);

    long CountRejections(string? experimentId = null);

    /// <summary>Stores a reported fingerprint (the first report of a client for a round wins).</summary>
    void RecordFingerprint(FingerprintRecord fingerprint);

    IReadOnlyList<FingerprintRecord> GetFingerprints(string experimentId, int round);

    // ---- what dashboards read ----------------------------------------------------------------------

    /// <summary>The newest rejections of an experiment first, at most <paramref name="limit"/>.</summary>
    IReadOnlyList<RejectionRecord> GetRejections(string experimentId, int limit);

    /// <summary>
    /// The clients of an experiment: every client the log has assigned or heard a fingerprint from, plus
    /// <paramref name="alsoInclude"/> (those connected now that have not been assigned yet), in id order.
    /// </summary>
    IReadOnlyList<ExperimentClientRecord> GetExperimentClients(string experimentId, IEnumerable<string> alsoInclude);

    /// <summary>The latest round any participant reported a fingerprint for, with every report of that round.</summary>
    IReadOnlyList<FingerprintRecord> GetLatestFingerprints(string experimentId);
}
