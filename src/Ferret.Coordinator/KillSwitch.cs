using System.Diagnostics;
using Ferret.Core.Protocol;

namespace Ferret.Coordinator;

/// <summary>
/// Fault injection for <c>ferret bench chaos</c>: a coordinator started with <c>--Ferret:KillAt NAME[,NAME]</c>
/// (names in <see cref="KillPoints"/>) kills itself with SIGKILL when it reaches one of them, so a harness can
/// prove recovery from the moments that are hardest to hit from outside. Unarmed (the default, and in
/// production), <see cref="Reach"/> is one volatile read.
/// </summary>
public static class KillSwitch
{
    private static volatile string[] _armed = [];

    /// <summary>Arms the named points (comma-separated); unknown names are an error.</summary>
    public static void Arm(string? names)
    {
        var list = (names ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        foreach (var n in list)
        {
            if (!KillPoints.Names.Contains(n))
                throw new ArgumentException($"Ferret:KillAt names '{n}', which is not one of {string.Join(", ", KillPoints.Names)}.");
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
