using System.Buffers.Binary;
using Ferret.Core.Projection;
using Ferret.Core.Randomness;

namespace Ferret.Core.Aggregation;

/// <summary>How clients' packets are weighted in a round's aggregate.</summary>
[System.Text.Json.Serialization.JsonConverter(typeof(System.Text.Json.Serialization.JsonStringEnumConverter<ClientWeighting>))]
public enum ClientWeighting
{
    /// <summary><c>omega_j = 1 / |S_r|</c> (the reference setting).</summary>
    Equal,

    /// <summary><c>omega_j = n_j / sum n</c> by local sample count.</summary>
    SampleCount,
}

/// <summary>One client's contribution to a round: its projections and how many samples it trained on.</summary>
public sealed record SeedContribution(SeedCoordinates Gammas, long SampleCount);

/// <summary>
/// Ferret's coordinator state: the seed pool <c>P[k][b]</c> (K x B) with server momentum,
/// <c>P = mu * P + sum_j omega_j * gamma_j</c>, and the global coefficients
/// <c>c = slr_r * P * min(1, maxNorm / (|P| * E||v|| + 1e-8))</c> as float32 (algorithms.md).
/// </summary>
public sealed class SeedPool
{
    private const int StateVersion = 1;
    private readonly double[] _pool;

    public SeedPool(int candidateCount, int blockCount)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(candidateCount, 2);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(blockCount);
        CandidateCount = candidateCount;
        BlockCount = blockCount;
        _pool = new double[checked(candidateCount * blockCount)];
    }

    public int CandidateCount { get; }

    public int BlockCount { get; }

    public double this[int seedIndex, int block] => _pool[Index(seedIndex, block)];

    private int Index(int k, int b) => (b * CandidateCount) + k;

    /// <summary>Folds one round's contributions into the pool. Packets must have passed validation.</summary>
    public void Accumulate(IReadOnlyList<SeedContribution> contributions, double momentum, ClientWeighting weighting)
    {
        ArgumentNullException.ThrowIfNull(contributions);
        if (!(momentum is >= 0 and < 1))
            throw new ArgumentOutOfRangeException(nameof(momentum), momentum, "Server momentum must lie in [0, 1).");
        if (momentum == 0)
            Array.Clear(_pool);
        else
            System.Numerics.Tensors.TensorPrimitives.Multiply(_pool, momentum, _pool);
        if (contributions.Count == 0)
            return;
        double totalSamples = contributions.Sum(c => (double)c.SampleCount);
        foreach (var c in contributions)
        {
            double omega = weighting == ClientWeighting.Equal || totalSamples <= 0
                ? 1.0 / contributions.Count
                : c.SampleCount / totalSamples;
            var g = c.Gammas;
            for (int i = 0; i < g.Count; i++)
                _pool[Index(g.SeedIndices[i], g.Blocks[i])] += omega * g.Values[i];
        }
    }

    /// <summary>
    /// Folds an already-averaged round into the pool, <c>P = mu * P + mean</c>, with the mean laid out densely
    /// as <c>mean[b * K + k]</c> (private aggregation hands the coordinator only this).
    /// </summary>
    public void AccumulateMean(ReadOnlySpan<double> mean, double momentum)
    {
        if (mean.Length != _pool.Length)
            throw new ArgumentException($"The mean has {mean.Length} entries; the pool holds {CandidateCount} x {BlockCount}.", nameof(mean));
        if (!(momentum is >= 0 and < 1))
            throw new ArgumentOutOfRangeException(nameof(momentum), momentum, "Server momentum must lie in [0, 1).");
        foreach (var m in mean)
        {
            if (!double.IsFinite(m))
                throw new ArgumentException("The mean has a non-finite entry.", nameof(mean));
        }
        System.Numerics.Tensors.TensorPrimitives.Multiply(_pool, momentum, _pool);
        System.Numerics.Tensors.TensorPrimitives.Add(_pool, mean, _pool);
    }

    /// <summary>The round's global coefficients: every non-zero pool entry, scaled and clipped, sorted by (block, seed).</summary>
    public SeedCoordinates Coefficients(double serverLearningRate, double maxNorm, BasisDistribution distribution)
    {
        if (!double.IsFinite(serverLearningRate))
            throw new ArgumentOutOfRangeException(nameof(serverLearningRate), serverLearningRate, "The server learning rate must be finite.");
        if (!(maxNorm > 0))
            throw new ArgumentOutOfRangeException(nameof(maxNorm), maxNorm, "The clipping norm must be positive.");
        double expectedNorm = SharedRandomness.ExpectedNorm(distribution);
        var seeds = new List<int>();
        var blocks = new List<int>();
        var values = new List<float>();
        for (int b = 0; b < BlockCount; b++)
        {
            for (int k = 0; k < CandidateCount; k++)
            {
                double p = _pool[Index(k, b)];
                if (p == 0)
                    continue;
                double clip = Math.Min(1.0, maxNorm / ((Math.Abs(p) * expectedNorm) + 1e-8));
                float c = (float)(serverLearningRate * p * clip);
                if (c == 0)
                    continue;
                seeds.Add(k);
                blocks.Add(b);
                values.Add(c);
            }
        }
        return new SeedCoordinates([.. seeds], [.. blocks], [.. values]);
    }

    /// <summary>The pool as bytes, for the coordinator's durable round log.</summary>
    public byte[] Export()
    {
        var bytes = new byte[12 + (8 * _pool.Length)];
        BinaryPrimitives.WriteInt32LittleEndian(bytes, StateVersion);
        BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(4), CandidateCount);
        BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(8), BlockCount);
        for (int i = 0; i < _pool.Length; i++)
            BinaryPrimitives.WriteDoubleLittleEndian(bytes.AsSpan(12 + (8 * i)), _pool[i]);
        return bytes;
    }

    public static SeedPool Import(ReadOnlySpan<byte> state)
    {
        if (state.Length < 12 || BinaryPrimitives.ReadInt32LittleEndian(state) != StateVersion)
            throw new InvalidDataException("The seed pool state is not version-1 seed pool data.");
        int k = BinaryPrimitives.ReadInt32LittleEndian(state[4..]);
        int b = BinaryPrimitives.ReadInt32LittleEndian(state[8..]);
        if (k < 2 || b < 1 || state.Length != 12 + (8L * k * b))
            throw new InvalidDataException($"The seed pool state holds {state.Length} bytes for K = {k}, B = {b}.");
        var pool = new SeedPool(k, b);
        for (int i = 0; i < pool._pool.Length; i++)
            pool._pool[i] = BinaryPrimitives.ReadDoubleLittleEndian(state[(12 + (8 * i))..]);
        return pool;
    }
}
