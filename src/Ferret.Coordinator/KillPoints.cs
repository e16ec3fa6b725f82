using System.Diagnostics;

namespace Ferret.Coordinator;

/// <summary>
/// Fault injection for <c>ferret bench chaos</c>: named moments at which a coordinator started with
/// <c>--Ferret:KillAt NAME[,NAME]</c> kills itself with SIGKILL, so a harness can prove recovery from the
/// exact moments that are hardest to hit from outside. Unarmed (the default), <see cref="Reach"/> is one
/// volatile read.
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

    private static volatile string[] _armed = [];

    /// <summary>Arms the named points (comma-separated); unknown names are an error.</summary>
    public static void Arm(string? names)
    {
        var list = (names ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        foreach (var n in list)
        {
            if (!Names.Contains(n))
                throw new ArgumentException($"Ferret:KillAt names '{n}', which is not one of {string.Join(", ", Names)}.");
        }
        _armed = list;
    }

    /// <summary>Kills this process with SIGKILL when the point is armed (no cleanup, no flush: a power cut).</summary>
    public static void Reach(string point)
    {
        var armed = _armed;
        if (armed.Length == 0 || !armed.Contains(point))
            return;
        Console.Out.WriteLine($"kill point {point} reached: SIGKILL");
        Console.Out.Flush();
        Process.GetCurrentProcess().Kill();
    }
}
