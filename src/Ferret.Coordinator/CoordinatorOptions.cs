using System.ComponentModel.DataAnnotations;

namespace Ferret.Coordinator;

/// <summary>
/// Coordinator settings, bound from the <c>Ferret</c> section of appsettings.json, environment variables
/// (<c>Ferret__AdminKey</c>) and the command line (<c>--Ferret:AdminKey</c>).
/// </summary>
public sealed class CoordinatorOptions
{
    public const string Section = "Ferret";

    /// <summary>
    /// SQLite file of the round log, used when <see cref="RoundLog"/> is not set. Relative paths resolve against the
    /// folder the coordinator was started in; unset, it lives in the user's data folder (never in a source tree).
    /// </summary>
    public string DatabasePath { get; set; } = "";

    /// <summary>
    /// The round log: a SQLite file path, or a PostgreSQL connection string (<c>Host=db;Database=ferret;Username=...</c>),
    /// which several coordinator instances can share. Unset: <see cref="DatabasePath"/>.
    /// </summary>
    public string? RoundLog { get; set; }

    /// <summary>The round log actually used.</summary>
    public string RoundLogSetting => string.IsNullOrWhiteSpace(RoundLog) ? DatabasePath : RoundLog;

    /// <summary>
    /// Redis (StackExchange.Redis configuration, <c>host:port[,password=...]</c>) carrying SignalR messages between
    /// coordinator instances, so a client or observer connected to any instance gets every event. Needs the round log on PostgreSQL.
    /// </summary>
    public string? Redis { get; set; }

    /// <summary>How long an instance's lease on an experiment lasts unrenewed: an owner that dies is replaced within this (PostgreSQL round log).</summary>
    [Range(1, 3600)]
    public int LeaseSeconds { get; set; } = 10;

    /// <summary>This instance's name among its peers (logs, the experiment's owner); unset: host name, process id and a random suffix.</summary>
    public string? InstanceId { get; set; }

    /// <summary>Bearer secret for the admin API (enrolment tokens, experiments). Required outside Development.</summary>
    public string? AdminKey { get; set; }

    /// <summary>Folder of artifact packages served to clients by fingerprint (relative: to the folder the coordinator was started in).</summary>
    public string ArtifactsDirectory { get; set; } = "artifacts";

    /// <summary>Where the round log goes when <see cref="DatabasePath"/> is not set.</summary>
    public static string DefaultDatabasePath =>
        Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.LocalApplicationData, Environment.SpecialFolderOption.Create), "ferret", "coordinator.db");

    /// <summary>Makes every path absolute against <paramref name="workingDirectory"/>, and creates the default round log's folder.</summary>
    public void ResolvePaths(string workingDirectory)
    {
        if (string.IsNullOrWhiteSpace(DatabasePath))
        {
            DatabasePath = DefaultDatabasePath;
            if (string.IsNullOrWhiteSpace(RoundLog))
                Directory.CreateDirectory(Path.GetDirectoryName(DatabasePath)!);
        }
        DatabasePath = Path.GetFullPath(DatabasePath, workingDirectory);
        ArtifactsDirectory = Path.GetFullPath(string.IsNullOrWhiteSpace(ArtifactsDirectory) ? "artifacts" : ArtifactsDirectory, workingDirectory);
    }

    /// <summary>Largest hub message accepted; full-model payloads travel in chunks below it.</summary>
    [Range(64 * 1024, 1024 * 1024 * 1024)]
    public long MaxMessageBytes { get; set; } = 4 * 1024 * 1024;

    /// <summary>Largest packet accepted as a whole, streamed in chunks of <c>RoundsProtocol.ChunkBytes</c> (FedAvg and FedZO send full deltas).</summary>
    [Range(64 * 1024, int.MaxValue)]
    public long MaxPacketBytes { get; set; } = 1024L * 1024 * 1024;

    /// <summary>Run the round engine. Off, the coordinator serves its API and round log without opening or closing rounds (maintenance, inspection).</summary>
    public bool RunRounds { get; set; } = true;

    /// <summary>Hub calls that may use the round log at once (the rest wait without holding a thread).</summary>
    [Range(1, 1000)]
    public int DatabaseConcurrency { get; set; } = 32;

    /// <summary>How often the round engine looks at deadlines when nothing wakes it sooner.</summary>
    [Range(10, 60_000)]
    public int EngineTickMilliseconds { get; set; } = 500;

    /// <summary>File holding the admin key (read once at start; keeps the key out of the command line and the environment).</summary>
    public string? AdminKeyFile { get; set; }

    /// <summary>Largest sample count a packet may claim: under sample-count weighting no client outweighs others by more than this.</summary>
    [Range(1, int.MaxValue)]
    public long MaxSampleCount { get; set; } = 1_000_000;

    /// <summary>Hub calls a connection may make per second on average (bursts of twice as many).</summary>
    [Range(1, 1_000_000)]
    public int HubCallsPerSecond { get; set; } = 20;

    /// <summary>Failed authentications and enrolments an address may make per minute before it is refused (429) for a while.</summary>
    [Range(1, 1_000_000)]
    public int FailedAuthenticationsPerMinute { get; set; } = 20;

    /// <summary>Rejections per client per minute written to the round log, the log and the observers; the rest are counted only.</summary>
    [Range(1, 1_000_000)]
    public int RejectionsPerMinute { get; set; } = 30;

    /// <summary>Largest REST request body (JSON); larger ones get 413 before they are read.</summary>
    [Range(1024, 64 * 1024 * 1024)]
    public long MaxRequestBodyBytes { get; set; } = 64 * 1024;

    /// <summary>
    /// Fault injection for <c>ferret bench chaos</c>: names of kill points (comma-separated, see <c>KillPoints</c>) at
    /// which the process kills itself with SIGKILL. Empty in production.
    /// </summary>
    public string? KillAt { get; set; }

    /// <summary>How long an enrolment token stays valid.</summary>
    [Range(1, 60 * 24 * 30)]
    public int EnrolmentValidityMinutes { get; set; } = 60 * 24;
}
