using Ferret.Coordinator.Artifacts;

namespace Ferret.Coordinator;

/// <summary>What the coordinator says at start-up: the absolute paths it uses, so nobody guesses which folder a relative path meant.</summary>
internal static partial class StartupLog
{
    public static void Paths(ILogger logger, CoordinatorOptions options, ArtifactIndex artifacts)
    {
        // A database server's setting may carry a password: only the SQLite file is named.
        RoundLogAt(logger, string.IsNullOrWhiteSpace(options.RoundLog) ? options.DatabasePath : "the database server named by Ferret:RoundLog");
        if (!Directory.Exists(options.ArtifactsDirectory))
        {
            NoArtifacts(logger, options.ArtifactsDirectory);
            return;
        }
        if (!logger.IsEnabled(LogLevel.Information))
            return;
        var packages = artifacts.List();
        var folders = string.Join(", ", packages.Select(p => p.Folder));
        ArtifactsAt(logger, options.ArtifactsDirectory, packages.Count, folders);
    }

    [LoggerMessage(EventId = 1, Level = LogLevel.Information, Message = "Round log: {Path}")]
    private static partial void RoundLogAt(ILogger logger, string path);

    [LoggerMessage(EventId = 2, Level = LogLevel.Information, Message = "Artifacts directory: {Path} ({Count} packages: {Folders})")]
    private static partial void ArtifactsAt(ILogger logger, string path, int count, string folders);

    [LoggerMessage(EventId = 3, Level = LogLevel.Warning, Message = "Artifacts directory {Path} does not exist: no experiment can be created until it holds an artifact package (ferret export --out {Path}/NAME)")]
    private static partial void NoArtifacts(ILogger logger, string path);
}
