using Ferret.Training.Data;
using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;

namespace Ferret.Training.Tests.Data;

public class PartitionerTests
{
    private static List<InstructionExample> Examples(int n, int categories) =>
        Enumerable.Range(0, n).Select(i => new InstructionExample($"i{i}", "", $"o{i}", $"c{i % categories}")).ToList();

    [Property(MaxTest = 60)]
    public Property Every_scheme_is_a_disjoint_cover_and_reproducible(PositiveInt size, PositiveInt clientCount, int seed, bool dirichlet)
    {
        int clients = 1 + (clientCount.Get % 8);
        int n = clients + (size.Get % 200);
        var data = Examples(n, 5);
        var scheme = dirichlet ? PartitionScheme.Dirichlet : PartitionScheme.Iid;
        var parts = Partitioner.Partition(data, clients, scheme, seed);
        var all = parts.SelectMany(p => p).Order().ToList();
        var again = Partitioner.Partition(data, clients, scheme, seed);
        return (all.SequenceEqual(Enumerable.Range(0, n)) && parts.All(p => p.Count > 0) && parts.Zip(again).All(z => z.First.SequenceEqual(z.Second))).ToProperty();
    }

    [Fact]
    public void Dirichlet_with_large_alpha_is_close_to_iid_and_with_small_alpha_concentrated()
    {
        var data = Examples(4000, 4);
        double Skew(double alpha)
        {
            // Mean over clients of the largest category share: 0.25 is perfectly mixed, 1 is one category per client.
            var parts = Partitioner.Partition(data, 10, PartitionScheme.Dirichlet, 3, alpha);
            return parts.Average(p => p.GroupBy(i => data[i].Category).Max(g => g.Count()) / (double)p.Count);
        }
        Assert.InRange(Skew(1000), 0.25, 0.35);
        Assert.InRange(Skew(0.05), 0.8, 1.0);
    }

    [Fact]
    public void Gamma_draws_have_the_right_mean()
    {
        var random = new Random(5);
        foreach (var alpha in new[] { 0.3, 1.0, 4.0 })
        {
            double mean = Enumerable.Range(0, 20000).Average(_ => Partitioner.Gamma(random, alpha));
            Assert.InRange(mean, alpha * 0.95, alpha * 1.05);
        }
    }

    [Fact]
    public void By_category_gives_each_client_whole_categories()
    {
        var data = Examples(90, 9);
        var parts = Partitioner.Partition(data, 9, PartitionScheme.ByCategory, 1);
        Assert.All(parts, p => Assert.Single(p.Select(i => data[i].Category).Distinct()));
        Assert.Contains("9 categories cannot give 10 clients", Assert.Throws<ArgumentException>(() => Partitioner.Partition(data, 10, PartitionScheme.ByCategory, 1)).Message);
    }

    [Fact]
    public void Hold_outs_split_by_category_or_fraction()
    {
        var data = Examples(100, 4);
        var (train, test) = Partitioner.HoldOutCategory(data, "c3");
        Assert.All(test, e => Assert.Equal("c3", e.Category));
        Assert.DoesNotContain(train, e => e.Category == "c3");
        var (a, b) = Partitioner.HoldOutFraction(data, 0.1, 2);
        Assert.Equal(10, b.Count);
        Assert.Empty(a.Intersect(b));
        Assert.Contains("No example has category 'zz'", Assert.Throws<ArgumentException>(() => Partitioner.HoldOutCategory(data, "zz")).Message);
    }
}
