namespace Ferret.Core.Tests.Privacy;

/// <summary>The few statistics the privacy tests state their tolerances in.</summary>
internal static class Statistics
{
    /// <summary>Pearson's chi-square statistic of counts against the uniform distribution over their bins.</summary>
    public static double ChiSquareUniform(IReadOnlyList<long> counts)
    {
        double total = counts.Sum();
        double expected = total / counts.Count;
        return counts.Sum(c => (c - expected) * (c - expected) / expected);
    }

    /// <summary>The upper quantile of chi-square with k degrees of freedom (Wilson-Hilferty), for a standard normal quantile z.</summary>
    public static double ChiSquareQuantile(int k, double z)
    {
        double a = 2.0 / (9 * k);
        return k * Math.Pow(1 - a + (z * Math.Sqrt(a)), 3);
    }
}
