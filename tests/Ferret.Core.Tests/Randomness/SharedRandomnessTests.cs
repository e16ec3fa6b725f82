using Ferret.Core.Randomness;
using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;

namespace Ferret.Core.Tests.Randomness;

public class SharedRandomnessTests
{
    private static string Hex(float v) => BitConverter.SingleToUInt32Bits(v).ToString("x8");

    [Fact]
    public void Philox_matches_the_known_answer_of_the_spec()
    {
        var (x0, x1, x2, x3) = Philox.Generate(0, 0, 0, 0, 0, 0);
        Assert.Equal("6627e8d5 e169c58d bc57ac4c 9b00dbd8", $"{x0:x8} {x1:x8} {x2:x8} {x3:x8}");
    }

    [Fact]
    public void Philox_matches_the_random123_known_answers()
    {
        // Random123's kat_vectors for philox4x32_10: all-ones and pi-digit inputs.
        var (a0, a1, a2, a3) = Philox.Generate(0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff);
        Assert.Equal("408f276d 41c83b0e a20bc7c6 6d5451fd", $"{a0:x8} {a1:x8} {a2:x8} {a3:x8}");
        var (b0, b1, b2, b3) = Philox.Generate(0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xa4093822, 0x299f31d0);
        Assert.Equal("d16cfe09 94fdcceb 5001e420 24126ea1", $"{b0:x8} {b1:x8} {b2:x8} {b3:x8}");
    }

    [Fact]
    public void Uniform_basis_matches_the_example_of_the_spec()
    {
        var hex = Enumerable.Range(0, 4).Select(i => Hex(SharedRandomness.BasisElement(42, 0, 1000, (ulong)i, BasisDistribution.Uniform)));
        Assert.Equal("3bea19fb bb023455 bcdd1ca3 bc24e6d5", string.Join(' ', hex));
        Assert.Equal(0.00714421039f, SharedRandomness.BasisElement(42, 0, 1000, 0, BasisDistribution.Uniform));
        Assert.Equal(-0.0100648003f, SharedRandomness.BasisElement(42, 0, 1000, 3, BasisDistribution.Uniform));
    }

    [Fact]
    public void Rademacher_basis_is_plus_or_minus_the_scale_by_bit_31()
    {
        float a = SharedRandomness.Scale(1000);
        for (ulong i = 0; i < 64; i++)
        {
            uint word = Philox.Word(42, 3, i);
            float expected = (word >> 31) == 0 ? a : -a;
            Assert.Equal(expected, SharedRandomness.BasisElement(42, 3, 1000, i, BasisDistribution.Rademacher));
        }
    }

    [Fact]
    public void Scale_is_one_rounding_of_the_double_reciprocal_square_root()
    {
        Assert.Equal((float)(1.0 / Math.Sqrt(1000.0)), SharedRandomness.Scale(1000));
        Assert.Equal(1f, SharedRandomness.Scale(1));
        Assert.Throws<ArgumentOutOfRangeException>(() => SharedRandomness.Scale(0));
    }

    [Fact]
    public void Candidate_seeds_are_the_first_two_words_of_the_reserved_counter()
    {
        var (w0, w1, _, _) = Philox.Generate(5, 0, 0xFFFFFFFF, 0, 0x89abcdef, 0x01234567);
        Assert.Equal(w0 | ((ulong)w1 << 32), SharedRandomness.CandidateSeed(0x0123456789abcdefUL, 5));
        var seeds = SharedRandomness.CandidateSeeds(7, 200);
        Assert.Equal(200, seeds.Distinct().Count());
        Assert.Equal(SharedRandomness.CandidateSeed(7, 199), seeds[199]);
    }

    [Fact]
    public void Unit_variance_stream_is_block_zero_scaled_by_root_three()
    {
        float s3 = (float)Math.Sqrt(3.0);
        for (ulong i = 0; i < 16; i++)
        {
            uint word = Philox.Word(9, 0, i);
            Assert.Equal(SharedRandomness.Uniform(word) * s3, SharedRandomness.UnitVarianceElement(9, i, BasisDistribution.Uniform));
            Assert.Equal((word >> 31) == 0 ? 1f : -1f, SharedRandomness.UnitVarianceElement(9, i, BasisDistribution.Rademacher));
        }
    }

    [Fact]
    public void Uniform_values_are_odd_multiples_of_two_to_minus_24_inside_the_open_interval()
    {
        Assert.Equal(-1f + 5.9604644775390625E-8f, SharedRandomness.Uniform(0));
        Assert.Equal(1f - 5.9604644775390625E-8f, SharedRandomness.Uniform(uint.MaxValue));
    }

    [Theory]
    [MemberData(nameof(KernelPaths.Available), MemberType = typeof(KernelPaths))]
    public void Every_kernel_path_fills_the_reference_bits(KernelPath path)
    {
        foreach (var dist in new[] { BasisDistribution.Uniform, BasisDistribution.Rademacher })
        {
            // Unaligned start, several tiles, ragged tail.
            const ulong start = 3;
            var filled = new float[(2 * BasisKernels.TileLength) + 77];
            float a = SharedRandomness.Scale(100_000);
            BasisKernels.Fill(0xfeedUL, 5, a, dist, filled, start, path);
            for (int i = 0; i < filled.Length; i++)
            {
                float expected = SharedRandomness.BasisElement(0xfeedUL, 5, 100_000, start + (ulong)i, dist);
                Assert.True(BitConverter.SingleToUInt32Bits(expected) == BitConverter.SingleToUInt32Bits(filled[i]), $"{dist} element {i}: {expected:G9} vs {filled[i]:G9}");
            }
        }
    }

    [Property(MaxTest = 40)]
    public Property Vector_paths_apply_the_same_bits_as_the_scalar_path(ulong seed, uint block, byte startByte, ushort lengthShort, bool rademacher)
    {
        ulong start = startByte;
        int length = lengthShort % 3000;
        var dist = rademacher ? BasisDistribution.Rademacher : BasisDistribution.Uniform;
        var rng = new Random((int)(seed ^ block));
        var w = new float[length];
        for (int i = 0; i < length; i++)
            w[i] = (float)(rng.NextDouble() - 0.5);
        ulong[] seeds = [seed, seed + 1, seed * 3];
        float[] coefficients = [0.25f, -1.5f, 3e-3f];
        float a = SharedRandomness.Scale(length + 1000);
        var reference = (float[])w.Clone();
        BasisKernels.Apply(seeds, coefficients, block, a, dist, reference, start, KernelPath.Scalar);
        bool same = true;
        foreach (var path in KernelPaths.Available().Select(p => (KernelPath)p[0]))
        {
            var v = (float[])w.Clone();
            BasisKernels.Apply(seeds, coefficients, block, a, dist, v, start, path);
            same &= v.AsSpan().SequenceEqual(reference);
        }
        return same.ToProperty();
    }

    [Theory]
    [MemberData(nameof(KernelPaths.Available), MemberType = typeof(KernelPaths))]
    public void Every_kernel_path_computes_the_same_dot_products(KernelPath path)
    {
        var rng = new Random(3);
        var data = new float[BasisKernels.TileLength + 1001];
        for (int i = 0; i < data.Length; i++)
            data[i] = (float)(rng.NextDouble() - 0.5);
        ulong[] seeds = [11, 12, 13, 14, 15];
        float a = SharedRandomness.Scale(data.Length);
        var expected = new double[seeds.Length];
        for (int s = 0; s < seeds.Length; s++)
        {
            for (int i = 0; i < data.Length; i++)
                expected[s] += (double)data[i] * SharedRandomness.BasisElement(seeds[s], 2, data.Length, 1 + (ulong)i, BasisDistribution.Uniform);
        }
        var dots = new double[seeds.Length];
        BasisKernels.Dot(seeds, 2, a, BasisDistribution.Uniform, data, 1, dots, path);
        for (int s = 0; s < seeds.Length; s++)
            Assert.True(Math.Abs(expected[s] - dots[s]) < 1e-5, $"seed {seeds[s]}: {expected[s]} vs {dots[s]}");
    }
}
