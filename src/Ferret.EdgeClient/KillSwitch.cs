using System.Diagnostics;
using System.Globalization;

namespace Ferret.EdgeClient;

/// <summary>
/// Fault injection for harnesses and tests: an edge client started with <c>FERRET_EDGE_KILL_AT_ROUND=N</c> kills itself
/// with SIGKILL when it is assigned round N, before it trains: a device that dies mid-round, at a moment a harness
/// cannot hit reliably from outside (its packet is never sent). Unset, the default and in production, it does nothing.
/// </summary>
internal static class KillSwitch
{
    public const string Variable = "FERRET_EDGE_KILL_AT_ROUND";

    private static int? _round;

    /// <summary>Reads the variable at start-up; a value that is not a round number is bad input, named.</summary>
    public static void Arm(string? value)
    {
        if (string.IsNullOrWhiteSpace(value))
        {
            _round = null;
            return;
        }
        _round = int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out int round) && round >= 1
            ? round
            : throw new ArgumentException($"{Variable}='{value}' is not a round number (1 or more).");
    }

    /// <summary>Kills this process with SIGKILL when <paramref name="round"/> is the armed round (no cleanup: a power cut).</summary>
    public static void BeforeTraining(int round)
    {
        if (_round != round)
            return;
        Console.Out.WriteLine($"kill point: assigned round {round}, killing this client (SIGKILL)");
        Console.Out.Flush();
        Process.GetCurrentProcess().Kill();
    }
}
