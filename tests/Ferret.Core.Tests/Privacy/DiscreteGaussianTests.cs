using Ferret.Core.Privacy;

namespace Ferret.Core.Tests.Privacy;

public sealed class DiscreteGaussianTests
{
    [Fact]
    public void Small_scale_samples_follow_the_discrete_gaussian_pmf()
    {
        // 40,000 samples at sigma = 1.3; bins -5..5 plus the two tails. Pearson's chi-square against the exact pmf
        // exp(-x^2 / (2 sigma^2)) / Z must stay below the 0.999 quantile of chi-square with 12 degrees of freedom (32.9).
        const double sigma = 1.3;
        const int n = 40_000;
        var sampler = new DiscreteGaussian(new SeededSecrets(11));
        var counts = new long[13];
        for (int i = 0; i < n; i++)
        {
            long x = sampler.Sample(sigma);
            counts[x < -5 ? 0 : x > 5 ? 12 : (int)x + 6]++;
        }
        double z = 0;
        for (int x = -60; x <= 60; x++)
            z += Math.Exp(-(x * x) / (2 * sigma * sigma));
        double P(int x) => Math.Exp(-(x * x) / (2 * sigma * sigma)) / z;
        var expected = new double[13];
        for (int x = -5; x <= 5; x++)
            expected[x + 6] = n * P(x);
        double tail = (1 - Enumerable.Range(-5, 11).Sum(P)) / 2;
        expected[0] = expected[12] = n * tail;
        double chi = counts.Select((c, i) => (c - expected[i]) * (c - expected[i]) / expected[i]).Sum();
        Assert.True(chi < 32.9, $"chi-square {chi:F1} over 13 bins: [{string.Join(", ", counts)}]");
    }

    [Fact]
    public void Large_scale_samples_have_mean_zero_and_variance_sigma_squared()
    {
        // N = 4,000 samples at sigma = 250,000: the mean within 4 sigma / sqrt(N), the variance within 4 sqrt(2 / N).
        const double sigma = 250_000;
        const int n = 4_000;
        var sampler = new DiscreteGaussian(new SeededSecrets(12));
        var x = Enumerable.Range(0, n).Select(_ => (double)sampler.Sample(sigma)).ToArray();
        double mean = x.Average();
        double variance = x.Sum(v => (v - mean) * (v - mean)) / (n - 1);
        Assert.True(Math.Abs(mean) < 4 * sigma / Math.Sqrt(n), $"mean {mean}");
        Assert.True(Math.Abs((variance / (sigma * sigma)) - 1) < 4 * Math.Sqrt(2.0 / n), $"variance ratio {variance / (sigma * sigma)}");
    }

    [Fact]
    public void Bernoulli_exp_coins_land_with_probability_exp_minus_gamma()
    {
        var sampler = new DiscreteGaussian(new SeededSecrets(13));
        foreach (var (n, d) in new[] { (7, 10), (23, 10), (0, 1) })
        {
            const int trials = 20_000;
            int heads = Enumerable.Range(0, trials).Count(_ => sampler.BernoulliExp(n, d));
            double p = Math.Exp(-(double)n / d);
            Assert.True(Math.Abs(heads - (trials * p)) <= 4 * Math.Sqrt(trials * p * (1 - p)) + 1e-9, $"exp(-{n}/{d}): {heads} of {trials}, expected {trials * p:F0}");
        }
    }

    [Fact]
    public void Doubles_are_read_as_exact_rationals()
    {
        var (three, four) = DiscreteGaussian.Rational(0.75);
        Assert.Equal(3, (int)three);
        Assert.Equal(4, (int)four);
        var (num, den) = DiscreteGaussian.Rational(1e12);
        Assert.Equal(new System.Numerics.BigInteger(1e12), num);
        Assert.Equal(System.Numerics.BigInteger.One, den);
        var (n1, d1) = DiscreteGaussian.Rational(0.1);
        Assert.Equal(0.1, (double)n1 / (double)d1);
        Assert.Equal(0, new DiscreteGaussian(new SeededSecrets(1)).Sample(0));
        Assert.Throws<ArgumentOutOfRangeException>(() => new DiscreteGaussian(new SeededSecrets(1)).Sample(double.NaN));
    }
}
