using Ferret.Core.Aggregation;
using Ferret.Core.Projection;
using Ferret.Core.Randomness;

namespace Ferret.Core.Tests.Aggregation;

public class AggregationTests
{
    private static SeedContribution Contribution(long samples, params (int K, int B, float G)[] entries) =>
        new(new SeedCoordinates(entries.Select(e => e.K).ToArray(), entries.Select(e => e.B).ToArray(), entries.Select(e => e.G).ToArray()), samples);

    [Fact]
    public void Equal_weights_average_the_clients_gammas()
    {
        var pool = new SeedPool(4, 2);
        pool.Accumulate([Contribution(10, (0, 0, 2f), (1, 1, 4f)), Contribution(30, (0, 0, 4f))], 0, ClientWeighting.Equal);
        Assert.Equal(3.0, pool[0, 0], 12);
        Assert.Equal(2.0, pool[1, 1], 12);
        Assert.Equal(0.0, pool[2, 0]);
    }

    [Fact]
    public void Sample_count_weights_follow_the_local_data_sizes()
    {
        var pool = new SeedPool(4, 1);
        pool.Accumulate([Contribution(10, (0, 0, 2f)), Contribution(30, (0, 0, 4f))], 0, ClientWeighting.SampleCount);
        Assert.Equal(3.5, pool[0, 0], 12);
    }

    [Fact]
    public void Momentum_carries_the_pool_into_the_next_round()
    {
        var pool = new SeedPool(2, 1);
        pool.Accumulate([Contribution(1, (0, 0, 1f))], 0.9, ClientWeighting.Equal);
        pool.Accumulate([Contribution(1, (1, 0, 1f))], 0.9, ClientWeighting.Equal);
        Assert.Equal(0.9, pool[0, 0], 12);
        Assert.Equal(1.0, pool[1, 0], 12);
        pool.Accumulate([], 0, ClientWeighting.Equal);
        Assert.Equal(0.0, pool[0, 0]);
    }

    [Fact]
    public void Coefficients_are_scaled_by_the_server_rate_and_clipped_by_the_expected_basis_norm()
    {
        var pool = new SeedPool(3, 1);
        pool.Accumulate([Contribution(1, (0, 0, 1f), (1, 0, 100f), (2, 0, -100f))], 0, ClientWeighting.Equal);
        var c = pool.Coefficients(2.0, 10.0, BasisDistribution.Rademacher);
        Assert.Equal([0, 1, 2], c.SeedIndices);
        Assert.Equal(2f, c.Values[0]);
        // |P| E||v|| = 100 > 10: scaled to 10 / (100 + 1e-8) of itself.
        Assert.Equal((float)(2.0 * 100 * (10 / (100 + 1e-8))), c.Values[1]);
        Assert.Equal(-c.Values[1], c.Values[2]);
        var uniform = pool.Coefficients(1.0, 10.0, BasisDistribution.Uniform);
        Assert.Equal((float)(100 * (10 / ((100 * Math.Sqrt(1.0 / 3)) + 1e-8))), uniform.Values[1]);
    }

    [Fact]
    public void Pool_state_round_trips_and_refuses_garbage()
    {
        var pool = new SeedPool(5, 3);
        pool.Accumulate([Contribution(1, (4, 2, 1.5f), (0, 0, -2f))], 0, ClientWeighting.Equal);
        var copy = SeedPool.Import(pool.Export());
        Assert.Equal(1.5, copy[4, 2]);
        Assert.Equal(-2.0, copy[0, 0]);
        Assert.Throws<InvalidDataException>(() => SeedPool.Import(new byte[7]));
        var state = pool.Export();
        Assert.Throws<InvalidDataException>(() => SeedPool.Import(state.AsSpan(0, state.Length - 8)));
    }

    [Theory]
    [InlineData(ScheduleKind.Constant, 1, 10.0)]
    [InlineData(ScheduleKind.Constant, 12, 10.0)]
    [InlineData(ScheduleKind.Linear, 1, 10.0)]
    [InlineData(ScheduleKind.Linear, 6, 5.5)]
    [InlineData(ScheduleKind.Linear, 11, 1.0)]
    [InlineData(ScheduleKind.Cosine, 1, 10.0)]
    [InlineData(ScheduleKind.Cosine, 6, 5.5)]
    [InlineData(ScheduleKind.Cosine, 11, 1.0)]
    public void Server_learning_rate_schedules_anneal_from_max_to_min(ScheduleKind kind, int round, double expected)
    {
        var schedule = new LearningRateSchedule(kind, 10.0, 1.0, 11);
        Assert.Equal(expected, schedule.At(round), 9);
    }

    [Fact]
    public void Cosine_stays_above_linear_in_the_first_half()
    {
        var cos = new LearningRateSchedule(ScheduleKind.Cosine, 10, 0, 21);
        var lin = new LearningRateSchedule(ScheduleKind.Linear, 10, 0, 21);
        Assert.True(cos.At(5) > lin.At(5), "expected cos.At(5) > lin.At(5)");
        Assert.True(cos.At(17) < lin.At(17), "expected cos.At(17) < lin.At(17)");
    }
}
