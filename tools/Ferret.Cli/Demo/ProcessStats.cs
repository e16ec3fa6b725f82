using System.Globalization;

namespace Ferret.Cli.Demo;

/// <summary>Resident memory and CPU time of a running process, from Linux's /proc.</summary>
internal static class ProcessStats
{
    /// <summary>Resident memory and user + system CPU seconds of a process (zeros when it is gone).</summary>
    public static (long RssBytes, double CpuSeconds) Sample(int pid)
    {
        try
        {
            long rss = 0;
            foreach (var line in File.ReadLines($"/proc/{pid}/status"))
            {
                if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
                    rss = long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) * 1024;
            }
            // Fields 14 and 15 of /proc/PID/stat (after the parenthesised name) are utime and stime in clock ticks (100 Hz on Linux).
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            double ticks = double.Parse(fields[11], CultureInfo.InvariantCulture) + double.Parse(fields[12], CultureInfo.InvariantCulture);
            return (rss, ticks / 100.0);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return (0, 0);
        }
    }

    /// <summary>The machine's one-minute load average.</summary>
    public static double LoadAverage() =>
        File.Exists("/proc/loadavg") ? double.Parse(File.ReadAllText("/proc/loadavg").Split(' ')[0], CultureInfo.InvariantCulture) : double.NaN;

    /// <summary>The whole machine's busy and total CPU time so far (all cores, clock ticks), from /proc/stat.</summary>
    public static (double Busy, double Total) MachineCpu()
    {
        if (!File.Exists("/proc/stat"))
            return (0, 0);
        var cpu = File.ReadLines("/proc/stat").First().Split(' ', StringSplitOptions.RemoveEmptyEntries).Skip(1)
            .Select(v => double.Parse(v, CultureInfo.InvariantCulture)).ToArray();
        double idle = cpu[3] + (cpu.Length > 4 ? cpu[4] : 0); // idle + iowait
        double total = cpu.Take(8).Sum(); // user nice system idle iowait irq softirq steal (guest time is inside user)
        return (total - idle, total);
    }
}
