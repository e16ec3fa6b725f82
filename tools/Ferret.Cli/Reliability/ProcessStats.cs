using System.Globalization;

namespace Ferret.Cli.Reliability;

/// <summary>Resident memory and CPU time of a process, read from /proc (Linux).</summary>
internal readonly record struct ProcessStats(long RssBytes, double CpuSeconds)
{
    public static ProcessStats Of(int pid)
    {
        if (!OperatingSystem.IsLinux())
            throw new NotSupportedException("Process statistics are read from /proc: Linux only.");
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
        return new ProcessStats(rss, ticks / 100.0);
    }

    /// <summary>The value below which <paramref name="p"/> of the samples lie (nearest rank); 0 for none.</summary>
    public static double Percentile(IReadOnlyCollection<double> samples, double p)
    {
        ArgumentNullException.ThrowIfNull(samples);
        if (samples.Count == 0)
            return 0;
        var sorted = samples.Order().ToArray();
        int rank = (int)Math.Ceiling(p * sorted.Length);
        return sorted[Math.Clamp(rank - 1, 0, sorted.Length - 1)];
    }
}
