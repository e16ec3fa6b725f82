using Ferret.Core.Privacy;

namespace Ferret.Core.Tests.Privacy;

public sealed class RdpAccountantTests
{
    [Theory]
    [InlineData(0.5, 2)]
    [InlineData(1.0, 7)]
    [InlineData(3.3, 64)]
    public void Without_subsampling_the_rdp_is_the_gaussian_closed_form(double z, int alpha)
    {
        // q = 1 is the plain Gaussian mechanism with sensitivity 1: RDP(alpha) = alpha / (2 z^2).
        Assert.Equal(alpha / (2 * z * z), RdpAccountant.Rdp(1.0, z, alpha), 12);
        Assert.Equal(0, RdpAccountant.Rdp(0.0, z, alpha));
    }

    [Fact]
    public void Rdp_matches_the_values_published_with_googles_dp_accounting()
    {
        // google/differential-privacy, python/dp_accounting/dp_accounting/rdp/rdp_privacy_accountant_test.py,
        // test_compute_rdp_poisson_sampled_gaussian: q = 0.01, z = 2.5, 50 steps; the integer orders of that table.
        var cases = new (int Order, double Rdp)[] { (5, 2.18075656e-03), (50, 2.38460375e-02), (100, 1.67416308e02) };
        foreach (var (order, expected) in cases)
        {
            double rdp = 50 * RdpAccountant.Rdp(0.01, 2.5, order);
            Assert.True(Math.Abs(rdp - expected) <= 1e-4 * expected, $"order {order}: {rdp:E8}, published {expected:E8}");
        }
    }

    [Fact]
    public void The_epsilon_conversion_matches_the_published_pure_dp_case()
    {
        // Same file, test_compute_epsilon_delta_pure_dp: constant RDP 1.1 over orders 2..32 at delta 1e-5 gives
        // epsilon 1.32783806176 at order 32.
        var orders = Enumerable.Range(2, 31).ToArray();
        var (eps, order) = RdpAccountant.Epsilon(orders, orders.Select(_ => 1.1).ToArray(), 1e-5);
        Assert.Equal(1.32783806176, eps, 9);
        Assert.Equal(32, order);
    }

    [Theory]
    [InlineData(0.01, 1.0, 8)]
    [InlineData(0.1, 2.0, 32)]
    [InlineData(0.5, 5.0, 20)]
    [InlineData(0.001, 0.8, 10)]
    [InlineData(0.25, 1.5, 40)]
    public void The_binomial_sum_agrees_with_numerical_integration_of_the_privacy_loss(double q, double sigma, int alpha)
    {
        // A second method: A_alpha = E_{x ~ N(0, s^2)} [((1 - q) + q exp((2x - 1) / (2 s^2)))^alpha], integrated by
        // composite Simpson in log space over a range that holds the integrand's mass.
        double logA = RdpAccountant.LogA(q, sigma, alpha);
        double numeric = LogIntegral(q, sigma, alpha);
        Assert.True(Math.Abs(logA - numeric) <= 1e-7 * Math.Max(1, Math.Abs(numeric)), $"log A = {logA:R}, integral {numeric:R}");
    }

    [Fact]
    public void Epsilon_grows_with_rounds_and_sampling_and_shrinks_with_noise()
    {
        double e1 = RdpAccountant.Epsilon(0.05, 1.0, 10, 1e-5).Epsilon;
        double e2 = RdpAccountant.Epsilon(0.05, 1.0, 100, 1e-5).Epsilon;
        double e3 = RdpAccountant.Epsilon(0.10, 1.0, 100, 1e-5).Epsilon;
        double e4 = RdpAccountant.Epsilon(0.10, 2.0, 100, 1e-5).Epsilon;
        Assert.True(e1 < e2 && e2 < e3 && e4 < e3, $"{e1} < {e2} < {e3}, {e4} < {e3}");
        Assert.Equal(0, RdpAccountant.Epsilon(0, 1.0, 10, 1e-5).Epsilon);
        Assert.True(double.IsPositiveInfinity(RdpAccountant.Epsilon(0.1, 0, 1, 1e-5).Epsilon), "no noise: no finite epsilon");
    }

    [Theory]
    [InlineData(1.0, 0.25, 12)]
    [InlineData(4.0, 0.1, 20)]
    [InlineData(8.0, 0.05, 100)]
    public void The_planned_noise_multiplier_reaches_the_target_epsilon_and_no_less_would(double epsilon, double q, int rounds)
    {
        double z = RdpAccountant.NoiseMultiplierFor(epsilon, q, rounds, 1e-5);
        Assert.True(RdpAccountant.Epsilon(q, z, rounds, 1e-5).Epsilon <= epsilon, $"z = {z} overshoots epsilon {epsilon}");
        Assert.True(RdpAccountant.Epsilon(q, z * 0.99, rounds, 1e-5).Epsilon > epsilon, $"z = {z} is not the smallest to 1 %");
    }

    [Fact]
    public void The_ledger_composes_rounds_and_survives_export()
    {
        var ledger = new PrivacyLedger();
        for (int r = 0; r < 7; r++)
            ledger.Add(0.2, 1.3);
        Assert.Equal(RdpAccountant.Epsilon(0.2, 1.3, 7, 1e-6), ledger.Epsilon(1e-6));
        var restored = PrivacyLedger.Import(ledger.Export());
        Assert.Equal(7, restored.Rounds);
        Assert.Equal(ledger.Epsilon(1e-6), restored.Epsilon(1e-6));
        Assert.Throws<InvalidDataException>(() => PrivacyLedger.Import(new byte[12]));
    }

    [Fact]
    public void Adaptive_clipping_leaves_the_update_the_rest_of_the_noise_budget()
    {
        // Andrew et al. 2021: z^-2 = z_update^-2 + (2 sigma_b)^-2.
        double z = 1.1, sigmaB = 2.0;
        double zu = RdpAccountant.UpdateNoiseMultiplier(z, sigmaB);
        Assert.Equal(1 / (z * z), (1 / (zu * zu)) + (1 / (4 * sigmaB * sigmaB)), 12);
        Assert.Throws<ArgumentOutOfRangeException>(() => RdpAccountant.UpdateNoiseMultiplier(1.0, 0.5));
    }

    private static double LogIntegral(double q, double s, int alpha)
    {
        double lo = -40 * s, hi = (40 * s) + (alpha * 2.0) + 2;
        const int n = 400_000;
        double h = (hi - lo) / n;
        var logf = new double[n + 1];
        double max = double.NegativeInfinity;
        for (int i = 0; i <= n; i++)
        {
            double x = lo + (i * h);
            double logMu0 = (-(x * x) / (2 * s * s)) - Math.Log(s * Math.Sqrt(2 * Math.PI));
            double e = (2 * x - 1) / (2 * s * s);
            // log((1 - q) + q e^e), stably
            double ratio = e > 0 ? e + Math.Log(q + ((1 - q) * Math.Exp(-e))) : Math.Log((1 - q) + (q * Math.Exp(e)));
            logf[i] = logMu0 + (alpha * ratio);
            max = Math.Max(max, logf[i]);
        }
        double sum = 0;
        for (int i = 0; i <= n; i++)
        {
            double w = i == 0 || i == n ? 1 : (i % 2 == 1 ? 4 : 2);
            sum += w * Math.Exp(logf[i] - max);
        }
        return max + Math.Log(sum * h / 3);
    }
}
