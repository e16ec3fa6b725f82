namespace Ferret.Core.Protocol;

/// <summary>
/// Names of the moments at which a coordinator started with <c>--Ferret:KillAt NAME[,NAME]</c> kills itself
/// with SIGKILL: the contract between the coordinator's fault injection and <c>ferret bench chaos</c>.
/// </summary>
public static class KillPoints
{
    /// <summary>Inside the transaction that stores a round's global update, before it commits.</summary>
    public const string AggregationTransaction = "aggregation-transaction";

    /// <summary>After the global update is stored, before it is broadcast.</summary>
    public const string AfterPersistBeforeBroadcast = "after-persist";

    /// <summary>While an artifact file is being served.</summary>
    public const string ArtifactDownload = "artifact-download";

    /// <summary>While a streamed (full-delta) upload is being received.</summary>
    public const string StreamedUpload = "streamed-upload";

    public static IReadOnlyList<string> Names { get; } = [AggregationTransaction, AfterPersistBeforeBroadcast, ArtifactDownload, StreamedUpload];
}
