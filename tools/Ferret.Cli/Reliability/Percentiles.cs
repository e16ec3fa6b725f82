namespace Ferret.Cli.Reliability;

/// <summary>Percentiles of a handful of measured samples (recovery times, round latencies).</summary>
internal static class Percentiles
{
    /// <summary>The value below which <paramref name="p"/> of the samples lie (nearest rank); 0 for none.</summary>
    public static double Of(IReadOnlyCollection<double> samples, double p)
    {
        ArgumentNullException.ThrowIfNull(samples);
        if (samples.Count == 0)
            return 0;
        var sorted = samples.Order().ToArray();
        int rank = (int)Math.Ceiling(p * sorted.Length);
        return sorted[Math.Clamp(rank - 1, 0, sorted.Length - 1)];
    }
}
