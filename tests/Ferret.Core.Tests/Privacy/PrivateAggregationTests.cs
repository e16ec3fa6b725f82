using Ferret.Core.Aggregation;
using Ferret.Core.Algorithms;
using Ferret.Core.Packets;
using Ferret.Core.Parameters;
using Ferret.Core.Privacy;
using Ferret.Core.Projection;
using Ferret.Core.Randomness;

namespace Ferret.Core.Tests.Privacy;

public sealed class PrivateAggregationTests
{
    private static readonly ParameterBlocks Blocks = ParameterBlocks.FromLengths([3000, 5000, 2000, 4096]);
    private const int K = 50;

    private static ExperimentDescriptor Experiment(PrivacySettings? privacy, double slr = 3)
    {
        var d = ExperimentDescriptor.Create("exp-private", FederatedAlgorithms.Ferret,
            new AlgorithmSettings { CandidateSeeds = K, ServerLearningRate = slr, ClipNorm = 1e6 }, 99, Blocks, "fp", 10, 0.5);
        d.Privacy = privacy;
        d.Validate();
        return d;
    }

    /// <summary>A client packet as Ferret's projector makes it: sparse, norm-adaptive seed counts.</summary>
    private static FerretUpdate Packet(ExperimentDescriptor d, int client, double scale = 1e-3, double loss = 2.5)
    {
        var random = new Random(client);
        var delta = Enumerable.Range(0, (int)Blocks.TotalLength).Select(_ => (float)((random.NextDouble() - 0.5) * scale)).ToArray();
        var g = Projector.Project(delta, Blocks, d.CandidateSeeds, BasisDistribution.Uniform, new Random(client + 1000));
        return new FerretUpdate { ExperimentId = d.Id, Round = 1, SampleCount = 10, Stats = new TrainingStats { Loss = loss }, SeedIndices = g.SeedIndices, Blocks = g.Blocks, Gammas = g.Values };
    }

    private static double[] DenseSum(IEnumerable<FerretUpdate> packets)
    {
        var sum = new double[Blocks.Count * K];
        foreach (var p in packets)
        {
            for (int i = 0; i < p.Gammas.Length; i++)
                sum[PrivateEncoding.DenseIndex(p.SeedIndices[i], p.Blocks[i], K)] += p.Gammas[i];
        }
        return sum;
    }

    [Fact]
    public void The_secure_sum_decodes_to_the_plain_sum_within_the_stated_quantization_error()
    {
        var privacy = new PrivacySettings { SecureAggregation = new SecureAggregationSettings { Threshold = 4, MaxAbsGamma = 50 } };
        var d = Experiment(privacy);
        const int n = 6;
        var plan = PrivacyPlan.Create(privacy, Blocks.Count * K, round: 1, assigned: n, eligible: 12, clipNorm: 0);
        var packets = Enumerable.Range(0, n).Select(c => Packet(d, c)).ToList();
        Assert.True(packets.Max(p => p.Gammas.Max(Math.Abs)) < 50, "the test's gammas must lie inside the clamp");

        using var h = new SecureRoundHarness(n, 4, 0, plan.VectorLength);
        foreach (var (id, i) in h.Ids.Select((id, i) => (id, i)))
            h.Inputs[id] = PrivateEncoding.ForMasking(packets[i], plan, K, new SeededSecrets(1));
        h.Advertise();
        h.Share();
        h.Mask();
        h.Unmask();
        var outcome = h.Finish();
        Assert.True(outcome.Succeeded, outcome.Failure);

        var decoded = PrivateEncoding.AsIntegers(outcome.Sum).Take(plan.GammaLength).Select(v => v / plan.GammaScale).ToArray();
        var plain = DenseSum(packets);
        double worst = decoded.Zip(plain, (a, b) => Math.Abs(a - b)).Max();
        Assert.True(worst <= plan.SumErrorBound, $"largest error {worst:E3} exceeds the bound n / (2 scale) = {plan.SumErrorBound:E3}");
        Assert.True(plan.SumErrorBound < 1e-6, $"the bound itself, {plan.SumErrorBound:E3}, should be tiny at n = 6 and range 50");
        // The mean loss travels in its own slot.
        Assert.Equal(2.5, PrivateEncoding.AsIntegers(outcome.Sum)[plan.LossSlot] / plan.LossScale / n, 6);

        // Through the seed pool: the private global update equals Ferret's plain aggregate to the same precision.
        var plainFerret = new FerretAlgorithm(Experiment(null), Blocks);
        var expected = (SeedCoefficientsUpdate)plainFerret.Aggregate(1, packets, []);
        var aggregation = new PrivateAggregation(d, new FerretAlgorithm(d, Blocks));
        var result = aggregation.AggregateSum(1, plan, outcome.Sum, n);
        var actual = (SeedCoefficientsUpdate)result.Update;
        Assert.Equal(expected.SeedIndices, actual.SeedIndices);
        Assert.Equal(expected.Blocks, actual.Blocks);
        double slack = (3 * plan.SumErrorBound / n) + 1e-6;
        Assert.All(expected.Coefficients.Zip(actual.Coefficients), p => Assert.True(Math.Abs(p.First - p.Second) <= slack + (1e-6 * Math.Abs(p.First)),
            $"coefficient {p.Second} vs plain {p.First}"));
        Assert.Equal(2.5, result.MeanTrainLoss!.Value, 6);
        Assert.Null(result.Privacy.Epsilon);
    }

    [Fact]
    public void The_scale_leaves_headroom_for_every_client_at_the_clamp()
    {
        var privacy = new PrivacySettings { SecureAggregation = new SecureAggregationSettings { Threshold = 2, MaxAbsGamma = 7 } };
        var plan = PrivacyPlan.Create(privacy, 10, round: 1, assigned: 200, eligible: 200, clipNorm: 0);
        var extreme = new FerretUpdate { SeedIndices = [0, 1], Blocks = [0, 0], Gammas = [1e9f, -1e9f] };
        var words = PrivateEncoding.ForMasking(extreme, plan, 5, new SeededSecrets(1));
        var sum = new uint[plan.VectorLength];
        for (int c = 0; c < 200; c++)
        {
            for (int i = 0; i < sum.Length; i++)
                sum[i] += words[i];
        }
        var decoded = PrivateEncoding.AsIntegers(sum);
        Assert.Equal(200 * 7.0, decoded[0] / plan.GammaScale, 3);
        Assert.Equal(-200 * 7.0, decoded[1] / plan.GammaScale, 3);
    }

    [Fact]
    public void Differential_privacy_clips_each_client_in_gamma_space_and_marks_it()
    {
        var privacy = new PrivacySettings { DifferentialPrivacy = new DifferentialPrivacySettings { NoiseMultiplier = 1, ClipNorm = 0.5, AdaptiveClipping = new() } };
        var plan = PrivacyPlan.Create(privacy, 20, round: 1, assigned: 10, eligible: 100, clipNorm: 0.5);
        var big = new FerretUpdate { SeedIndices = [0, 3], Blocks = [0, 1], Gammas = [3f, 4f] }; // norm 5
        var q = PrivateEncoding.Quantize(big, plan, 10, out bool unclipped);
        Assert.False(unclipped, "a gamma of norm 5 is clipped at 0.5");
        double norm = Math.Sqrt(q.Take(plan.GammaLength).Sum(v => (double)v * v)) / plan.GammaScale;
        Assert.Equal(0.5, norm, 5);
        Assert.Equal(0.3, q[0] / plan.GammaScale, 5);
        Assert.Equal(-(long)plan.BitScale / 2, q[plan.BitSlot]);
        var small = new FerretUpdate { SeedIndices = [1], Blocks = [0], Gammas = [0.25f] };
        q = PrivateEncoding.Quantize(small, plan, 10, out unclipped);
        Assert.True(unclipped, "a gamma of norm 0.25 is within the clip norm 0.5");
        Assert.Equal(0.25, q[1] / plan.GammaScale, 6);
        Assert.Equal((long)plan.BitScale / 2, q[plan.BitSlot]);
        Assert.Equal(-1, plan.LossSlot); // no unnoised loss under DP
    }

    [Fact]
    public void Central_noise_has_the_stated_scale_on_the_mean_gamma()
    {
        // All clients send zero; the mean gamma is then pure noise with standard deviation z * sensitivity / (scale * n).
        var privacy = new PrivacySettings { DifferentialPrivacy = new DifferentialPrivacySettings { NoiseMultiplier = 1.2, ClipNorm = 2 } };
        var d = Experiment(privacy, slr: 1);
        var aggregation = new PrivateAggregation(d, new FerretAlgorithm(d, Blocks), new SeededSecrets(21));
        var plan = aggregation.Plan(1, assigned: 8, eligible: 80);
        var zero = new FerretUpdate { SeedIndices = [], Blocks = [], Gammas = [] };
        var result = aggregation.AggregatePackets(1, plan, Enumerable.Repeat(zero, 8).ToList());
        var c = ((SeedCoefficientsUpdate)result.Update).Coefficients;
        Assert.Equal(plan.GammaLength, c.Length); // dense: every coordinate carries noise
        double sd = Math.Sqrt(c.Select(v => (double)v * v).Average());
        double expected = 1.2 * plan.GammaSensitivity / plan.GammaScale / 8;
        Assert.True(Math.Abs((sd / expected) - 1) < 0.08, $"noise sd {sd:E4}, stated {expected:E4}");
        Assert.Equal(2 + (Math.Sqrt(plan.GammaLength) / 2 / plan.GammaScale), plan.GammaSensitivity / plan.GammaScale, 9);
        Assert.Equal(0.1, result.Privacy.SamplingRate);
        Assert.Equal(RdpAccountant.Epsilon(0.1, 1.2, 1, 1e-5).Epsilon, result.Privacy.Epsilon!.Value, 12);
        Assert.Null(result.MeanTrainLoss);
    }

    [Fact]
    public void Distributed_noise_from_threshold_clients_adds_up_to_the_central_scale()
    {
        var privacy = new PrivacySettings
        {
            SecureAggregation = new SecureAggregationSettings { Threshold = 5 },
            DifferentialPrivacy = new DifferentialPrivacySettings { NoiseMultiplier = 0.9, ClipNorm = 1, Placement = NoisePlacement.Distributed },
        };
        var plan = PrivacyPlan.Create(privacy, 2000, round: 1, assigned: 5, eligible: 50, clipNorm: 1);
        var zero = new FerretUpdate { SeedIndices = [], Blocks = [], Gammas = [] };
        var sum = new uint[plan.VectorLength];
        for (int c = 0; c < 5; c++)
        {
            var words = PrivateEncoding.ForMasking(zero, plan, 100, new SeededSecrets(100 + (ulong)c));
            for (int i = 0; i < sum.Length; i++)
                sum[i] += words[i];
        }
        var noise = PrivateEncoding.AsIntegers(sum);
        double sd = Math.Sqrt(noise.Select(v => (double)v * v).Average());
        Assert.True(Math.Abs((sd / plan.GammaNoise) - 1) < 0.08, $"summed noise sd {sd:E4}, central scale {plan.GammaNoise:E4}");
        Assert.Equal(plan.GammaNoise / Math.Sqrt(5), plan.ClientGammaNoise, 6);
    }

    [Fact]
    public void Adaptive_clipping_follows_the_quantile_of_update_norms()
    {
        var privacy = new PrivacySettings
        {
            DifferentialPrivacy = new DifferentialPrivacySettings { NoiseMultiplier = 0.5, ClipNorm = 1, AdaptiveClipping = new AdaptiveClippingSettings { LearningRate = 0.2 } },
        };
        var d = Experiment(privacy);
        var aggregation = new PrivateAggregation(d, new FerretAlgorithm(d, Blocks), new SeededSecrets(31));
        var tiny = new FerretUpdate { SeedIndices = [0], Blocks = [0], Gammas = [1e-3f] };
        var huge = new FerretUpdate { SeedIndices = [0], Blocks = [0], Gammas = [1e3f] };
        var plan = aggregation.Plan(1, 40, 400);
        var r1 = aggregation.AggregatePackets(1, plan, Enumerable.Repeat(tiny, 40).ToList());
        Assert.InRange(r1.Privacy.UnclippedFraction!.Value, 0.9, 1.1);
        Assert.True(aggregation.ClipNorm < 0.92, $"all clients under the norm: C should shrink by about exp(-0.1), is {aggregation.ClipNorm}");
        double before = aggregation.ClipNorm;
        var r2 = aggregation.AggregatePackets(2, aggregation.Plan(2, 40, 400), Enumerable.Repeat(huge, 40).ToList());
        Assert.InRange(r2.Privacy.UnclippedFraction!.Value, -0.1, 0.1);
        Assert.True(aggregation.ClipNorm > before * 1.08, $"all clients clipped: C should grow by about exp(0.1), {before} -> {aggregation.ClipNorm}");
        Assert.Equal(aggregation.ClipNorm, r2.Privacy.NextClipNorm);
        // The count's noise is paid for: the update's share of the budget is smaller than z.
        Assert.True(plan.UpdateNoiseMultiplier > 0.5, $"the update keeps most of the noise budget: {plan.UpdateNoiseMultiplier}");
    }

    [Fact]
    public void Private_state_survives_export_and_import()
    {
        var privacy = new PrivacySettings { DifferentialPrivacy = new DifferentialPrivacySettings { NoiseMultiplier = 1, ClipNorm = 1, AdaptiveClipping = new() } };
        var d = Experiment(privacy);
        var a = new PrivateAggregation(d, new FerretAlgorithm(d, Blocks), new SeededSecrets(41));
        a.AggregatePackets(1, a.Plan(1, 5, 20), Enumerable.Range(0, 5).Select(c => Packet(d, c)).ToList());
        var b = new PrivateAggregation(d, new FerretAlgorithm(d, Blocks), new SeededSecrets(42));
        b.ImportState(a.ExportState());
        Assert.Equal(a.ClipNorm, b.ClipNorm);
        Assert.Equal(a.Spent, b.Spent);
        Assert.Equal(1, b.AccountedRounds);
        Assert.Equal(a.ExportState(), b.ExportState());
        Assert.Throws<InvalidDataException>(() => b.ImportState(new byte[5]));
    }

    [Fact]
    public void A_private_descriptor_travels_intact()
    {
        var privacy = new PrivacySettings
        {
            SecureAggregation = new SecureAggregationSettings { Threshold = 5, Neighbours = 8, MaxAbsGamma = 12, KeysSeconds = 7 },
            DifferentialPrivacy = new DifferentialPrivacySettings
            {
                NoiseMultiplier = 0.8,
                ClipNorm = 3,
                Delta = 1e-6,
                Placement = NoisePlacement.Distributed,
                AdaptiveClipping = new AdaptiveClippingSettings { TargetQuantile = 0.7, CountNoise = 2 },
            },
        };
        var back = Wire.Deserialize<ExperimentDescriptor>(Wire.Serialize(Experiment(privacy))).Privacy!;
        Assert.Equal((5, 8, 12.0, 7), (back.SecureAggregation!.Threshold, back.SecureAggregation.Neighbours, back.SecureAggregation.MaxAbsGamma, back.SecureAggregation.KeysSeconds));
        Assert.Equal((0.8, 3.0, 1e-6, NoisePlacement.Distributed), (back.DifferentialPrivacy!.NoiseMultiplier, back.DifferentialPrivacy.ClipNorm, back.DifferentialPrivacy.Delta, back.DifferentialPrivacy.Placement));
        Assert.Equal((0.7, 2.0), (back.DifferentialPrivacy.AdaptiveClipping!.TargetQuantile, back.DifferentialPrivacy.AdaptiveClipping.CountNoise!.Value));
        Assert.Null(Wire.Deserialize<ExperimentDescriptor>(Wire.Serialize(Experiment(null))).Privacy);
    }

    [Fact]
    public void Privacy_settings_refuse_what_they_cannot_protect()
    {
        var distributedAlone = new PrivacySettings { DifferentialPrivacy = new DifferentialPrivacySettings { Placement = NoisePlacement.Distributed } };
        var e = Assert.Throws<ArgumentException>(() => distributedAlone.Validate(FederatedAlgorithms.Ferret, ClientWeighting.Equal));
        Assert.Contains("Distributed noise needs secure aggregation", e.Message);
        var secure = new PrivacySettings { SecureAggregation = new SecureAggregationSettings { Threshold = 3 } };
        e = Assert.Throws<ArgumentException>(() => secure.Validate(FederatedAlgorithms.FedAvg, ClientWeighting.Equal));
        Assert.Contains("'fedavg' is not supported", e.Message);
        e = Assert.Throws<ArgumentException>(() => secure.Validate(FederatedAlgorithms.Ferret, ClientWeighting.SampleCount));
        Assert.Contains("weights clients equally", e.Message);
        e = Assert.Throws<ArgumentException>(() => new SecureAggregationSettings { Threshold = 1 }.Validate());
        Assert.Contains("'threshold' = 1", e.Message);
        e = Assert.Throws<ArgumentException>(() => new SecureAggregationSettings { Threshold = 9, Neighbours = 4 }.Validate());
        Assert.Contains("'threshold' must not exceed 'neighbours' + 1", e.Message);
        e = Assert.Throws<ArgumentException>(() => new DifferentialPrivacySettings { NoiseMultiplier = 0 }.Validate());
        Assert.Contains("'noiseMultiplier' = 0", e.Message);
    }

    [Fact]
    public void The_gamma_norm_bounds_the_reconstructed_update_norm()
    {
        // One block of |b| = 4096 and K = 64 uniform bases v_k (the columns of V). The reconstructed update is
        // V gamma, so ||V gamma|| <= sigma_max(V) ||gamma||; with entries of variance 1 / (3 |b|), E||v||^2 = 1/3 and
        // sigma_max(V) <= sqrt(1/3) (1 + sqrt(K / |b|)) up to fluctuations of order 1 / sqrt(|b|) (docs/privacy.md).
        const int length = 4096, k = 64;
        var blocks = ParameterBlocks.FromLengths([length]);
        var seeds = SharedRandomness.CandidateSeeds(5, k);
        var v = new double[k][];
        for (int j = 0; j < k; j++)
            v[j] = Enumerable.Range(0, length).Select(i => (double)SharedRandomness.BasisElement(seeds[j], 0, length, (ulong)i, BasisDistribution.Uniform)).ToArray();
        var gram = new double[k, k];
        for (int a = 0; a < k; a++)
        {
            for (int b = a; b < k; b++)
                gram[a, b] = gram[b, a] = v[a].Zip(v[b], (x, y) => x * y).Sum();
        }
        double meanSquareNorm = Enumerable.Range(0, k).Average(j => gram[j, j]);
        Assert.InRange(meanSquareNorm, 1.0 / 3 - 0.01, 1.0 / 3 + 0.01);
        double sigmaMax = Math.Sqrt(LargestEigenvalue(gram));
        double bound = Math.Sqrt(1.0 / 3) * (1 + Math.Sqrt((double)k / length));
        Assert.True(sigmaMax <= bound + (3.0 / Math.Sqrt(length)), $"sigma_max(V) = {sigmaMax:F4}, bound {bound:F4} + 3 / sqrt(|b|)");

        var random = new Random(3);
        for (int trial = 0; trial < 20; trial++)
        {
            var gamma = Enumerable.Range(0, k).Select(_ => (float)(random.NextDouble() - 0.5)).ToArray();
            var w = new float[length];
            Reconstruction.Apply(w, blocks, new SeedCoordinates(Enumerable.Range(0, k).ToArray(), new int[k], gamma), seeds, BasisDistribution.Uniform);
            double updateNorm = Math.Sqrt(w.Sum(x => (double)x * x));
            double gammaNorm = Math.Sqrt(gamma.Sum(x => (double)x * x));
            Assert.True(updateNorm <= (sigmaMax * gammaNorm * (1 + 1e-5)) + 1e-6, $"||V gamma|| = {updateNorm}, sigma_max ||gamma|| = {sigmaMax * gammaNorm}");
        }
    }

    private static double LargestEigenvalue(double[,] m)
    {
        int n = m.GetLength(0);
        var x = Enumerable.Repeat(1.0, n).ToArray();
        double lambda = 0;
        for (int it = 0; it < 500; it++)
        {
            var y = new double[n];
            for (int i = 0; i < n; i++)
            {
                for (int j = 0; j < n; j++)
                    y[i] += m[i, j] * x[j];
            }
            double norm = Math.Sqrt(y.Sum(t => t * t));
            lambda = norm / Math.Sqrt(x.Sum(t => t * t));
            x = y.Select(t => t / norm).ToArray();
        }
        return lambda;
    }
}
