using Ferret.Core.Randomness;
using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;

namespace Ferret.Core.Tests.Randomness;

public class PhiloxNormalTests
{
    private const ulong Key = 0x54494E49_00000007UL;

    [Theory]
    [MemberData(nameof(KernelPaths.Available), MemberType = typeof(KernelPaths))]
    public void Every_kernel_path_fills_the_bits_of_the_scalar_reference(KernelPath path)
    {
        foreach (ulong start in new ulong[] { 0, 5, 63, 64, 1000, (1UL << 32) + 17 })
        {
            var filled = new float[(3 * PhiloxNormal.GroupLength) + 29];
            PhiloxNormal.Fill(Key, 3, 0.02f, filled, start, path);
            for (int i = 0; i < filled.Length; i++)
            {
                float expected = PhiloxNormal.Element(Key, 3, start + (ulong)i, 0.02f);
                Assert.True(BitConverter.SingleToUInt32Bits(expected) == BitConverter.SingleToUInt32Bits(filled[i]),
                    $"{path}, start {start}, element {i}: reference {expected:G9}, filled {filled[i]:G9}");
            }
        }
    }

    [Property(MaxTest = 15)]
    public Property The_bits_do_not_depend_on_the_thread_count_or_the_slicing(uint stream, ushort startShort, byte threads, ushort cutShort)
    {
        // Long enough to be split into many pieces; starts and cuts off group boundaries.
        const int length = 300_000;
        ulong start = startShort;
        var single = new float[length];
        PhiloxNormal.Fill(Key, stream, 1f, single, start, KernelPath.Scalar);
        var parallel = new float[length];
        PhiloxNormal.FillParallel(Key, stream, 1f, parallel, start, maxDegreeOfParallelism: 1 + (threads % 7));
        int cut = cutShort % length;
        var sliced = new float[length];
        PhiloxNormal.FillParallel(Key, stream, 1f, sliced.AsMemory(0, cut), start);
        PhiloxNormal.FillParallel(Key, stream, 1f, sliced.AsMemory(cut), start + (ulong)cut, maxDegreeOfParallelism: 3);
        return (single.AsSpan().SequenceEqual(parallel) && single.AsSpan().SequenceEqual(sliced))
            .ToProperty().Label($"{1 + (threads % 7)} threads, cut at {cut}, start {start}");
    }

    [Fact]
    public void Values_are_pinned_for_a_key_and_stream()
    {
        // A regression anchor: changing the recipe changes every seeded large preset's weights.
        float[] expected = [0.38040057f, -0.6339838f, 0.724508f, 0.6543151f];
        var actual = Enumerable.Range(0, 4).Select(i => PhiloxNormal.Element(1, 0, (ulong)(i * 17))).ToArray();
        Assert.True(expected.SequenceEqual(actual), $"expected [{string.Join(", ", expected.Select(v => v.ToString("R", System.Globalization.CultureInfo.InvariantCulture)))}], got [{string.Join(", ", actual.Select(v => v.ToString("R", System.Globalization.CultureInfo.InvariantCulture)))}]");
    }

    [Fact]
    public void Polynomials_track_box_muller_in_double_precision()
    {
        // The same Philox words through Math.Log, Math.Cos and Math.Sin in double: our float polynomials stay within 2e-6 absolute.
        double worst = 0;
        for (ulong q = 0; q < 4096; q++)
        {
            var (x0, x1, x2, x3) = Philox.Generate((uint)q, 0, 9, 0, (uint)(Key & 0xFFFFFFFF), (uint)(Key >> 32));
            ulong g = q / 16, l = q % 16;
            foreach (var (radius, angle, offset) in new[] { (x0, x1, 0UL), (x2, x3, 32UL) })
            {
                double u = ((2.0 * (radius >> 9)) + 1) / (1 << 24);
                double v = (angle >> 8) / (double)(1 << 24);
                double r = Math.Sqrt(-2 * Math.Log(u));
                worst = Math.Max(worst, Math.Abs((r * Math.Cos(2 * Math.PI * v)) - PhiloxNormal.Element(Key, 9, (64 * g) + offset + l)));
                worst = Math.Max(worst, Math.Abs((r * Math.Sin(2 * Math.PI * v)) - PhiloxNormal.Element(Key, 9, (64 * g) + offset + 16 + l)));
            }
        }
        Assert.True(worst < 2e-6, $"largest gap to double-precision Box-Muller: {worst:E2}");
    }

    [Fact]
    public void A_million_values_look_standard_normal()
    {
        // n = 2^20: standard errors are 0.001 (mean), 0.0014 (variance), 0.005 (kurtosis); Kolmogorov-Smirnov at 1 % is 1.63 / sqrt(n) = 0.0016.
        const int n = 1 << 20;
        var x = new float[n];
        PhiloxNormal.FillParallel(Key, 11, 1f, x, 0);
        double mean = x.Average(v => (double)v);
        double variance = x.Sum(v => (v - mean) * (v - mean)) / n;
        double kurtosis = x.Sum(v => Math.Pow(v - mean, 4)) / n / (variance * variance);
        Assert.True(Math.Abs(mean) < 0.005, $"mean {mean:F5}, expected 0 +- 0.005");
        Assert.True(Math.Abs(variance - 1) < 0.007, $"variance {variance:F5}, expected 1 +- 0.007");
        Assert.True(Math.Abs(kurtosis - 3) < 0.03, $"kurtosis {kurtosis:F4}, expected 3 +- 0.03");
        Array.Sort(x);
        double ks = 0;
        for (int i = 0; i < n; i += 7)
        {
            double cdf = 0.5 * (1 + Erf(x[i] / Math.Sqrt(2)));
            ks = Math.Max(ks, Math.Max(Math.Abs(cdf - ((double)i / n)), Math.Abs(cdf - ((double)(i + 1) / n))));
        }
        Assert.True(ks < 0.0016, $"Kolmogorov-Smirnov distance {ks:F5}, expected below 0.0016 (1 % level)");
    }

    /// <summary>Abramowitz and Stegun 7.1.26, absolute error below 1.5e-7.</summary>
    private static double Erf(double z)
    {
        double t = 1 / (1 + (0.3275911 * Math.Abs(z)));
        double y = 1 - ((((((((1.061405429 * t) - 1.453152027) * t) + 1.421413741) * t) - 0.284496736) * t) + 0.254829592) * t * Math.Exp(-z * z);
        return z >= 0 ? y : -y;
    }
}
