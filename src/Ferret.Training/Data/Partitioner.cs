namespace Ferret.Training.Data;

/// <summary>How a data set is spread over clients (algorithms.md's data setups).</summary>
public enum PartitionScheme
{
    /// <summary>Shuffled and dealt out evenly.</summary>
    Iid,

    /// <summary>Label skew: each category's examples split over clients by Dirichlet(alpha) proportions.</summary>
    Dirichlet,

    /// <summary>One category (task, language) per client, categories dealt round-robin.</summary>
    ByCategory,
}

/// <summary>Seeded, deterministic splits of examples over clients, and hold-outs for evaluation.</summary>
public static class Partitioner
{
    /// <summary>Indices of the examples each client holds; every index appears exactly once.</summary>
    public static List<int>[] Partition(IReadOnlyList<InstructionExample> examples, int clients, PartitionScheme scheme, int seed, double alpha = 0.5)
    {
        ArgumentNullException.ThrowIfNull(examples);
        ArgumentOutOfRangeException.ThrowIfLessThan(clients, 1);
        if (examples.Count < clients)
            throw new ArgumentException($"{examples.Count} examples cannot give each of {clients} clients at least one.");
        var random = new Random(seed);
        var parts = Enumerable.Range(0, clients).Select(_ => new List<int>()).ToArray();
        switch (scheme)
        {
            case PartitionScheme.Iid:
                {
                    var order = Enumerable.Range(0, examples.Count).ToArray();
                    random.Shuffle(order);
                    for (int i = 0; i < order.Length; i++)
                        parts[i % clients].Add(order[i]);
                    break;
                }
            case PartitionScheme.ByCategory:
                {
                    var categories = examples.Select(e => e.Category).Distinct().Order(StringComparer.Ordinal).ToList();
                    if (categories.Count < clients)
                        throw new ArgumentException($"{categories.Count} categories cannot give {clients} clients one each; use fewer clients or another scheme.");
                    for (int i = 0; i < examples.Count; i++)
                        parts[categories.IndexOf(examples[i].Category) % clients].Add(i);
                    break;
                }
            case PartitionScheme.Dirichlet:
                {
                    if (!(alpha > 0))
                        throw new ArgumentOutOfRangeException(nameof(alpha), alpha, "Dirichlet alpha must be positive.");
                    foreach (var group in Enumerable.Range(0, examples.Count).GroupBy(i => examples[i].Category).OrderBy(g => g.Key, StringComparer.Ordinal))
                    {
                        var members = group.ToArray();
                        random.Shuffle(members);
                        var p = Dirichlet(random, clients, alpha);
                        int start = 0;
                        double cumulative = 0;
                        for (int c = 0; c < clients; c++)
                        {
                            cumulative += p[c];
                            int end = c == clients - 1 ? members.Length : (int)Math.Round(cumulative * members.Length);
                            parts[c].AddRange(members[start..Math.Max(start, end)]);
                            start = Math.Max(start, end);
                        }
                    }
                    // Every client needs data: move one example from the largest client to each empty one.
                    foreach (var empty in parts.Where(p => p.Count == 0))
                    {
                        var largest = parts.MaxBy(p => p.Count)!;
                        empty.Add(largest[^1]);
                        largest.RemoveAt(largest.Count - 1);
                    }
                    break;
                }
            default:
                throw new ArgumentOutOfRangeException(nameof(scheme), scheme, "Unknown partition scheme.");
        }
        return parts;
    }

    /// <summary>A Dirichlet(alpha, ..., alpha) draw via Gamma(alpha, 1) variates (Marsaglia–Tsang).</summary>
    public static double[] Dirichlet(Random random, int k, double alpha)
    {
        ArgumentNullException.ThrowIfNull(random);
        var g = new double[k];
        double sum = 0;
        for (int i = 0; i < k; i++)
            sum += g[i] = Gamma(random, alpha);
        if (sum == 0)
        {
            g[random.Next(k)] = 1;
            return g;
        }
        for (int i = 0; i < k; i++)
            g[i] /= sum;
        return g;
    }

    internal static double Gamma(Random random, double alpha)
    {
        if (alpha < 1)
            return Gamma(random, alpha + 1) * Math.Pow(random.NextDouble(), 1.0 / alpha);
        double d = alpha - (1.0 / 3.0), c = 1.0 / Math.Sqrt(9 * d);
        while (true)
        {
            double x, v;
            do
            {
                double u1 = 1.0 - random.NextDouble(), u2 = random.NextDouble();
                x = Math.Sqrt(-2 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2);
                v = 1 + (c * x);
            }
            while (v <= 0);
            v = v * v * v;
            double u = random.NextDouble();
            if (u < 1 - (0.0331 * x * x * x * x) || Math.Log(u) < (0.5 * x * x) + (d * (1 - v + Math.Log(v))))
                return d * v;
        }
    }

    /// <summary>Splits off the examples of one category (a held-out task) for evaluation.</summary>
    public static (List<InstructionExample> Train, List<InstructionExample> Test) HoldOutCategory(IReadOnlyList<InstructionExample> examples, string category)
    {
        ArgumentNullException.ThrowIfNull(examples);
        var test = examples.Where(e => e.Category == category).ToList();
        if (test.Count == 0)
            throw new ArgumentException($"No example has category '{category}'; categories are {string.Join(", ", examples.Select(e => e.Category).Distinct())}.");
        return (examples.Where(e => e.Category != category).ToList(), test);
    }

    /// <summary>A random fraction held out for evaluation, reproducibly.</summary>
    public static (List<InstructionExample> Train, List<InstructionExample> Test) HoldOutFraction(IReadOnlyList<InstructionExample> examples, double fraction, int seed)
    {
        ArgumentNullException.ThrowIfNull(examples);
        if (!(fraction is > 0 and < 1))
            throw new ArgumentOutOfRangeException(nameof(fraction), fraction, "The held-out fraction lies in (0, 1).");
        var order = Enumerable.Range(0, examples.Count).ToArray();
        new Random(seed).Shuffle(order);
        int test = Math.Max(1, (int)Math.Round(fraction * examples.Count));
        return (order[test..].Select(i => examples[i]).ToList(), order[..test].Select(i => examples[i]).ToList());
    }
}
