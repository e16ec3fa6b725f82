using System.Collections.Frozen;
using Ferret.Core.Randomness;

namespace Ferret.Core.Privacy;

/// <summary>Why a secure-aggregation step cannot go on; the message says what went wrong and with whom.</summary>
public sealed class SecureAggregationException : Exception
{
    public SecureAggregationException()
    {
    }

    public SecureAggregationException(string message)
        : base(message)
    {
    }

    public SecureAggregationException(string message, Exception inner)
        : base(message, inner)
    {
    }
}

/// <summary>
/// The public frame of one secure-aggregation round: who takes part (the assigned clients in ordinal order; a
/// client's Shamir point is its 1-based position), the reconstruction threshold t, the length of the vector
/// summed, and the SecAgg+ neighbour graph (Bell et al. 2020): a ring over a seeded permutation of the
/// participants in which everyone is linked to k/2 clients on each side, or to everyone when k &gt;= n - 1
/// (the complete graph of the original protocol). Masks and shares only run along the graph's edges.
/// </summary>
public sealed class SecureRound
{
    private readonly FrozenDictionary<string, int> _points;
    private readonly FrozenDictionary<string, FrozenSet<string>> _neighbours;

    private SecureRound(string experimentId, int round, IReadOnlyList<string> participants, int threshold, int vectorLength,
        FrozenDictionary<string, FrozenSet<string>> neighbours)
    {
        ExperimentId = experimentId;
        Round = round;
        Participants = participants;
        Threshold = threshold;
        VectorLength = vectorLength;
        _neighbours = neighbours;
        _points = participants.Select((c, i) => (c, i)).ToFrozenDictionary(p => p.c, p => p.i + 1, StringComparer.Ordinal);
    }

    public string ExperimentId { get; }

    public int Round { get; }

    /// <summary>The round's assigned clients, ordinal order.</summary>
    public IReadOnlyList<string> Participants { get; }

    public int Threshold { get; }

    public int VectorLength { get; }

    /// <summary>Neighbours per participant (k, or n - 1 for the complete graph).</summary>
    public int NeighbourCount => _neighbours.Count == 0 ? 0 : _neighbours.Values.First().Count;

    /// <summary>
    /// The frame of a round. <paramref name="neighbours"/> is k (rounded up to even; 0 or anything &gt;= n - 1 means
    /// everyone); each client shares among its neighbours and itself, so the threshold must not exceed k + 1.
    /// </summary>
    public static SecureRound Create(string experimentId, int round, IReadOnlyList<string> participants, int threshold, int neighbours, int vectorLength, ulong graphSeed)
    {
        ArgumentNullException.ThrowIfNull(participants);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(vectorLength);
        var sorted = participants.Order(StringComparer.Ordinal).ToArray();
        if (sorted.Distinct(StringComparer.Ordinal).Count() != sorted.Length)
            throw new ArgumentException("A client appears twice among the round's participants.", nameof(participants));
        int n = sorted.Length;
        int k = Degree(n, neighbours);
        if (threshold < 2 || threshold > k + 1)
            throw new ArgumentException($"A secure round of {n} clients with {k} neighbours each needs a threshold in [2, {k + 1}]; it is {threshold}.", nameof(threshold));
        var links = sorted.ToDictionary(c => c, _ => new HashSet<string>(StringComparer.Ordinal), StringComparer.Ordinal);
        if (k == n - 1)
        {
            foreach (var a in sorted)
                links[a].UnionWith(sorted.Where(b => b != a));
        }
        else
        {
            var ring = sorted.ToArray();
            SeedMix.Random(graphSeed, (ulong)round, 0x6E1B).Shuffle(ring);
            for (int i = 0; i < n; i++)
            {
                for (int j = 1; j <= k / 2; j++)
                {
                    var a = ring[i];
                    var b = ring[(i + j) % n];
                    links[a].Add(b);
                    links[b].Add(a);
                }
            }
        }
        var frozen = links.ToFrozenDictionary(p => p.Key, p => p.Value.ToFrozenSet(StringComparer.Ordinal), StringComparer.Ordinal);
        return new SecureRound(experimentId, round, sorted, threshold, vectorLength, frozen);
    }

    /// <summary>The degree of the neighbour graph for n clients and a requested k.</summary>
    public static int Degree(int clients, int neighbours)
    {
        if (clients < 2)
            return 0;
        if (neighbours <= 0 || neighbours >= clients - 1)
            return clients - 1;
        int even = neighbours + (neighbours & 1);
        return Math.Min(even, clients - 1);
    }

    public bool IsParticipant(string clientId) => _points.ContainsKey(clientId);

    /// <summary>The client's Shamir point (1-based position among the participants).</summary>
    public int PointOf(string clientId) =>
        _points.TryGetValue(clientId, out var x) ? x : throw new KeyNotFoundException($"'{clientId}' is not a participant of round {Round}.");

    public IReadOnlySet<string> NeighboursOf(string clientId) =>
        _neighbours.TryGetValue(clientId, out var set) ? set : throw new KeyNotFoundException($"'{clientId}' is not a participant of round {Round}.");

    public bool AreNeighbours(string a, string b) => _neighbours.TryGetValue(a, out var set) && set.Contains(b);

    /// <summary>+1 when <paramref name="self"/> adds the pairwise mask it shares with <paramref name="other"/>, -1 when it subtracts it.</summary>
    public static int MaskSign(string self, string other) => string.CompareOrdinal(self, other) < 0 ? 1 : -1;
}
