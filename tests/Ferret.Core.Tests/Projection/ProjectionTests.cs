using Ferret.Core.Parameters;
using Ferret.Core.Projection;
using Ferret.Core.Randomness;

namespace Ferret.Core.Tests.Projection;

public class ProjectionTests
{
    private static ParameterBlocks Blocks(params long[] sizes) =>
        ParameterBlocks.Partition(new ParameterLayout(sizes.Select((s, i) => ($"t{i}", (IReadOnlyList<long>)new[] { s }))));

    private static float[] RandomVector(int n, int seed, double scale = 1)
    {
        var r = new Random(seed);
        var v = new float[n];
        for (int i = 0; i < n; i++)
            v[i] = (float)((r.NextDouble() - 0.5) * scale);
        return v;
    }

    [Fact]
    public void Seed_counts_follow_the_norm_ratio_clamped_to_two_and_k()
    {
        Assert.Equal([200, 100, 2, 2], Projector.SeedCounts([4.0, 2.0, 0.001, 0], 200));
        Assert.Equal([2, 2], Projector.SeedCounts([0.0, 0.0], 200));
        Assert.Throws<ArgumentOutOfRangeException>(() => Projector.SeedCounts([1.0], 1));
    }

    [Fact]
    public void Gammas_are_scaled_dot_products_with_the_reference_bases()
    {
        var blocks = Blocks(3000, 2000, 2500);
        var delta = RandomVector(7500, 1, 0.01);
        var seeds = SharedRandomness.CandidateSeeds(99, 16);
        var gammas = Projector.Project(delta, blocks, seeds, BasisDistribution.Uniform, new Random(5));
        for (int i = 0; i < gammas.Count; i++)
        {
            var block = blocks[gammas.Blocks[i]];
            int nb = gammas.Blocks.Count(b => b == gammas.Blocks[i]);
            double dot = 0;
            for (long j = 0; j < block.Length; j++)
                dot += delta[block.Offset + j] * (double)SharedRandomness.BasisElement(seeds[gammas.SeedIndices[i]], (uint)block.Index, block.Length, (ulong)j, BasisDistribution.Uniform);
            double expected = block.Length / (double)nb * dot;
            Assert.True(Math.Abs(expected - gammas.Values[i]) <= 1e-4 * Math.Max(1, Math.Abs(expected)), $"entry {i}: {expected} vs {gammas.Values[i]}");
        }
        // Sorted by block, then strictly ascending seed index inside a block.
        for (int i = 1; i < gammas.Count; i++)
            Assert.True(gammas.Blocks[i] > gammas.Blocks[i - 1] || (gammas.Blocks[i] == gammas.Blocks[i - 1] && gammas.SeedIndices[i] > gammas.SeedIndices[i - 1]), "expected gammas.Blocks[i] > gammas.Blocks[i - 1] || (gammas.Blocks[i] == gammas.Blocks[i - 1] && gammas.SeedIndices[i] > gammas.SeedIndices[i - 1])");
    }

    [Fact]
    public void Projection_does_not_depend_on_threads_or_kernel_path()
    {
        var blocks = Blocks(70_000, 50_000, 90_001);
        var delta = RandomVector(210_001, 2, 0.02);
        var seeds = SharedRandomness.CandidateSeeds(1, 32);
        var one = Projector.Project(delta, blocks, seeds, BasisDistribution.Rademacher, new Random(7), new KernelOptions { Threads = 1, WorkItemLength = 4096 });
        var many = Projector.Project(delta, blocks, seeds, BasisDistribution.Rademacher, new Random(7), new KernelOptions { Threads = 4, WorkItemLength = 4096 });
        Assert.Equal(one.Values, many.Values);
        Assert.Equal(one.SeedIndices, many.SeedIndices);
    }

    [Fact]
    public void A_non_finite_update_is_refused_naming_its_block()
    {
        var blocks = Blocks(100, 100, 100);
        var delta = new float[300];
        delta[150] = float.NaN;
        var e = Assert.Throws<InvalidDataException>(() => Projector.Project(delta, blocks, SharedRandomness.CandidateSeeds(1, 8), BasisDistribution.Uniform, new Random(1)));
        Assert.Contains("block 1", e.Message);
    }

    [Fact]
    public void Reconstruction_gives_the_same_fingerprint_on_every_path_and_thread_count()
    {
        var blocks = Blocks(40_000, 33_333, 65_536, 7);
        var w0 = RandomVector((int)blocks.TotalLength, 3);
        var seeds = SharedRandomness.CandidateSeeds(5, 64);
        var coefficients = Projector.Project(RandomVector((int)blocks.TotalLength, 4, 0.1), blocks, seeds, BasisDistribution.Uniform, new Random(2));
        string? reference = null;
        foreach (var path in KernelPaths.Available().Select(p => (KernelPath)p[0]))
        {
            foreach (var threads in new[] { 1, 2, 8 })
            {
                var w = (float[])w0.Clone();
                Reconstruction.Apply(w, blocks, coefficients, seeds, BasisDistribution.Uniform, new KernelOptions { Path = path, Threads = threads, WorkItemLength = 8192 });
                var fp = ModelFingerprint.Compute(w);
                reference ??= fp;
                Assert.True(reference == fp, $"{path}, {threads} threads: {fp} != {reference}");
            }
        }
        Assert.NotEqual(ModelFingerprint.Compute(w0), reference);
    }

    [Fact]
    public void Reconstruction_matches_the_scalar_rule_of_the_contract_bit_for_bit()
    {
        var blocks = Blocks(1000, 1500);
        var w = RandomVector(2500, 8);
        var seeds = SharedRandomness.CandidateSeeds(11, 8);
        var c = new SeedCoordinates([1, 5, 0, 7], [0, 0, 1, 1], [0.5f, -0.25f, 3f, 1e-3f]);
        var expected = (float[])w.Clone();
        for (int e = 0; e < c.Count; e++)
        {
            var block = blocks[c.Blocks[e]];
            for (long i = 0; i < block.Length; i++)
            {
                float v = SharedRandomness.BasisElement(seeds[c.SeedIndices[e]], (uint)block.Index, block.Length, (ulong)i, BasisDistribution.Uniform);
                float t = c.Values[e] * v;
                expected[block.Offset + i] = expected[block.Offset + i] - t;
            }
        }
        Reconstruction.Apply(w, blocks, c, seeds, BasisDistribution.Uniform);
        Assert.Equal(ModelFingerprint.Compute(expected), ModelFingerprint.Compute(w));
    }

    [Fact]
    public void Reconstruction_refuses_descending_or_unknown_seeds()
    {
        var blocks = Blocks(100);
        var seeds = SharedRandomness.CandidateSeeds(1, 4);
        Assert.Contains("ascend", Assert.Throws<ArgumentException>(() => Reconstruction.Apply(new float[100], blocks, new SeedCoordinates([2, 1], [0, 0], [1, 1]), seeds, BasisDistribution.Uniform)).Message);
        Assert.Contains("outside [0, 4)", Assert.Throws<ArgumentException>(() => Reconstruction.Apply(new float[100], blocks, new SeedCoordinates([9], [0], [1]), seeds, BasisDistribution.Uniform)).Message);
    }

    [Fact]
    public void Reconstruction_is_unbiased_for_rademacher_bases()
    {
        // E[n <delta, v> v] = delta for v_i = +-1/sqrt(n); averaging N seeds leaves a relative error of
        // about sqrt(n / N) (chi-square with n degrees of freedom): we accept [0.6, 1.4] times that.
        const int n = 64;
        var blocks = Blocks(n);
        var delta = RandomVector(n, 12);
        double deltaNorm = Math.Sqrt(delta.Sum(x => (double)x * x));
        double Error(int seedCount)
        {
            var seeds = SharedRandomness.CandidateSeeds((ulong)seedCount, seedCount);
            var dots = new double[seedCount];
            BasisKernels.Dot(seeds, 0, SharedRandomness.Scale(n), BasisDistribution.Rademacher, delta, 0, dots);
            var c = new SeedCoordinates(Enumerable.Range(0, seedCount).ToArray(), new int[seedCount], dots.Select(d => (float)(-n * d / seedCount)).ToArray());
            var w = new float[n];
            Reconstruction.Apply(w, blocks, c, seeds, BasisDistribution.Rademacher);
            double err = 0;
            for (int i = 0; i < n; i++)
                err += (w[i] - delta[i]) * (double)(w[i] - delta[i]);
            return Math.Sqrt(err) / deltaNorm;
        }
        foreach (var count in new[] { 1000, 16000 })
        {
            double expected = Math.Sqrt(n / (double)count);
            double actual = Error(count);
            Assert.InRange(actual, 0.6 * expected, 1.4 * expected);
        }
        // Sixteen times the seeds: four times less error, give or take the same spread.
        double ratio = Error(1000) / Error(16000);
        Assert.InRange(ratio, 4 * 0.6 / 1.4, 4 * 1.4 / 0.6);
    }

    [Fact]
    public void Uniform_generator_passes_moment_and_chi_square_checks()
    {
        // 2^20 values from one stream: mean 0 +- 4 sigma (sigma = sqrt(1/3 / N)), variance 1/3 +- 1 %,
        // and 16-bin chi-square below 37.7 (df 15, p = 0.001).
        const int count = 1 << 20;
        var v = new float[count];
        BasisKernels.Fill(2024, 0, 1f, BasisDistribution.Uniform, v, 0);
        double mean = v.Average(x => (double)x);
        double variance = v.Average(x => (double)x * x) - (mean * mean);
        Assert.InRange(mean, -4 * Math.Sqrt(1.0 / 3 / count), 4 * Math.Sqrt(1.0 / 3 / count));
        Assert.InRange(variance, 1.0 / 3 * 0.99, 1.0 / 3 * 1.01);
        var bins = new int[16];
        foreach (var x in v)
            bins[Math.Min(15, (int)((x + 1) * 8))]++;
        double expectedPerBin = count / 16.0;
        double chi2 = bins.Sum(b => (b - expectedPerBin) * (b - expectedPerBin) / expectedPerBin);
        Assert.True(chi2 < 37.7, $"chi-square {chi2:F1}");
    }

    [Fact]
    public void Perturbations_have_unit_variance_and_apply_like_the_contract()
    {
        var z = new float[1 << 18];
        SeedPerturbations.Fill(77, BasisDistribution.Uniform, z);
        Assert.InRange(z.Average(x => (double)x * x), 0.99, 1.01);
        Assert.Equal(SharedRandomness.UnitVarianceElement(77, 12345, BasisDistribution.Uniform), z[12345]);
        var w = new float[1000];
        SeedPerturbations.Apply(new ulong[] { 77 }, new float[] { -1f }, BasisDistribution.Rademacher, w);
        Assert.All(w, x => Assert.True(x is 1f or -1f, "expected x is 1f or -1f"));
    }

    /// <summary>An update that can only be read range by range, counting the reads (as a GPU client's is).</summary>
    private sealed class StreamedUpdate(float[] delta) : Ferret.Core.Algorithms.ILocalUpdate
    {
        public List<(long Offset, int Length)> Reads { get; } = [];

        public long Length => delta.LongLength;

        public void Read(long offset, Span<float> destination)
        {
            Reads.Add((offset, destination.Length));
            delta.AsSpan((int)offset, destination.Length).CopyTo(destination);
        }

        public bool TryGetMemory(out ReadOnlyMemory<float> memory)
        {
            memory = default;
            return false;
        }

        public void Dispose()
        {
        }
    }

    [Theory]
    [InlineData(1)]
    [InlineData(4000)]
    [InlineData(9000)]
    public void A_streamed_projection_is_bit_identical_to_projecting_the_whole_vector(long chunkElements)
    {
        var blocks = Blocks(3000, 2000, 2500, 1500, 900, 3100);
        var delta = RandomVector((int)blocks.TotalLength, 11, 0.02);
        var seeds = SharedRandomness.CandidateSeeds(7, 64);
        var whole = Projector.Project(delta, blocks, seeds, BasisDistribution.Uniform, new Random(3));
        var streamed = new StreamedUpdate(delta);
        var chunked = Projector.Project(streamed, blocks, seeds, BasisDistribution.Uniform, new Random(3), chunkElements: chunkElements);
        Assert.Equal(whole.SeedIndices, chunked.SeedIndices);
        Assert.Equal(whole.Blocks, chunked.Blocks);
        Assert.Equal(whole.Values, chunked.Values);
        // Two passes (norms, then dot products) over whole blocks; no chunk larger than the limit unless one block is.
        Assert.Equal(2 * blocks.Count, streamed.Reads.Sum(r => blocks.Blocks.Count(b => b.Offset >= r.Offset && b.End <= r.Offset + r.Length)));
        long largest = blocks.Blocks.Max(b => b.Length);
        Assert.All(streamed.Reads, r => Assert.True(r.Length <= Math.Max(chunkElements, largest), $"a read of {r.Length} elements exceeds the chunk limit {chunkElements}"));
    }

    [Fact]
    public void A_streamed_update_with_a_non_finite_value_is_refused_naming_its_block()
    {
        var blocks = Blocks(3000, 2000);
        var delta = RandomVector(5000, 2);
        delta[4100] = float.NaN;
        var e = Assert.Throws<InvalidDataException>(() => Projector.Project(new StreamedUpdate(delta), blocks, SharedRandomness.CandidateSeeds(1, 8),
            BasisDistribution.Uniform, new Random(1), chunkElements: 1000));
        Assert.Contains("block 1", e.Message);
    }
}
