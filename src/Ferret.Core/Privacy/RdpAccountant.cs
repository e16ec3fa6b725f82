using System.Buffers.Binary;

namespace Ferret.Core.Privacy;

/// <summary>
/// Rényi-DP accounting of the sampled Gaussian mechanism (Mironov, Talwar and Zhang 2019) at integer orders
/// alpha = 2..256: with sampling rate q and noise multiplier z, <c>RDP(alpha) = log(A_alpha) / (alpha - 1)</c>,
/// <c>A_alpha = sum_k C(alpha, k) (1 - q)^(alpha - k) q^k exp((k^2 - k) / (2 z^2))</c>, summed in log space. RDP adds
/// up over rounds; the (epsilon, delta) statement uses the conversion of Canonne, Kamath and Steinke (2020) /
/// Balle et al. (2020), <c>eps = RDP(a) + log((a - 1) / a) - (log delta + log a) / (a - 1)</c>, minimised over the
/// orders (as Opacus and Google's dp_accounting do). Neighbouring data sets add or remove one client.
/// </summary>
public static class RdpAccountant
{
    public const int MinOrder = 2;
    public const int MaxOrder = 256;

    /// <summary>The integer orders accounted, 2 to 256.</summary>
    public static IReadOnlyList<int> Orders { get; } = Enumerable.Range(MinOrder, MaxOrder - MinOrder + 1).ToArray();

    /// <summary><c>log A_alpha</c> of the sampled Gaussian for one integer order.</summary>
    public static double LogA(double q, double z, int alpha)
    {
        Check(q, z);
        ArgumentOutOfRangeException.ThrowIfLessThan(alpha, 1);
        if (q == 0)
            return 0;
        if (z == 0)
            return double.PositiveInfinity;
        if (q == 1)
            return alpha * (alpha - 1) / (2 * z * z);
        double logQ = Math.Log(q), log1mQ = double.LogP1(-q);
        double acc = double.NegativeInfinity;
        double logBinomial = 0; // log C(alpha, 0)
        for (int k = 0; k <= alpha; k++)
        {
            if (k > 0)
                logBinomial += Math.Log(alpha - k + 1) - Math.Log(k);
            double term = logBinomial + ((alpha - k) * log1mQ) + (k * logQ) + (((double)k * k - k) / (2 * z * z));
            acc = LogAdd(acc, term);
        }
        return acc;
    }

    /// <summary>The RDP of one round of the sampled Gaussian at an integer order.</summary>
    public static double Rdp(double q, double z, int alpha)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(alpha, 2);
        return LogA(q, z, alpha) / (alpha - 1);
    }

    /// <summary>RDP at every order of <see cref="Orders"/> after <paramref name="rounds"/> rounds at (q, z).</summary>
    public static double[] RdpAfter(double q, double z, int rounds)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(rounds);
        var rdp = new double[Orders.Count];
        for (int i = 0; i < rdp.Length; i++)
            rdp[i] = rounds * Rdp(q, z, Orders[i]);
        return rdp;
    }

    /// <summary>The smallest epsilon over the orders for a target delta, and the order that gives it.</summary>
    public static (double Epsilon, int Order) Epsilon(IReadOnlyList<int> orders, IReadOnlyList<double> rdp, double delta)
    {
        ArgumentNullException.ThrowIfNull(orders);
        ArgumentNullException.ThrowIfNull(rdp);
        if (orders.Count != rdp.Count || orders.Count == 0)
            throw new ArgumentException($"{orders.Count} orders and {rdp.Count} RDP values.");
        if (!(delta is > 0 and < 1))
            throw new ArgumentOutOfRangeException(nameof(delta), delta, "delta must lie in (0, 1).");
        double best = double.PositiveInfinity;
        int bestOrder = orders[0];
        double logDelta = Math.Log(delta);
        for (int i = 0; i < orders.Count; i++)
        {
            double a = orders[i];
            if (a <= 1 || double.IsNaN(rdp[i]))
                continue;
            if (rdp[i] == 0)
                return (0, orders[i]); // no divergence at all: the two outputs are identically distributed
            double eps = rdp[i] + Math.Log((a - 1) / a) - ((logDelta + Math.Log(a)) / (a - 1));
            if (eps < best)
            {
                best = eps;
                bestOrder = orders[i];
            }
        }
        return (Math.Max(0, best), bestOrder);
    }

    /// <summary>Epsilon after <paramref name="rounds"/> rounds of the sampled Gaussian at (q, z), for delta.</summary>
    public static (double Epsilon, int Order) Epsilon(double q, double z, int rounds, double delta) => Epsilon(Orders, RdpAfter(q, z, rounds), delta);

    /// <summary>
    /// The smallest noise multiplier (to 0.1 %) whose epsilon after <paramref name="rounds"/> rounds is at most
    /// <paramref name="epsilon"/>: what to ask for when planning a private experiment.
    /// </summary>
    public static double NoiseMultiplierFor(double epsilon, double q, int rounds, double delta)
    {
        if (!(epsilon > 0) || !double.IsFinite(epsilon))
            throw new ArgumentOutOfRangeException(nameof(epsilon), epsilon, "The target epsilon must be positive and finite.");
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(rounds);
        double lo = 0.01, hi = 1;
        while (Epsilon(q, hi, rounds, delta).Epsilon > epsilon)
        {
            lo = hi;
            hi *= 2;
            if (hi > 1e6)
                throw new ArgumentException($"No noise multiplier up to 1e6 reaches epsilon {epsilon} with q = {q}, {rounds} rounds, delta = {delta}.");
        }
        while (hi - lo > 1e-3 * hi)
        {
            double mid = (lo + hi) / 2;
            if (Epsilon(q, mid, rounds, delta).Epsilon > epsilon)
                lo = mid;
            else
                hi = mid;
        }
        return hi;
    }

    /// <summary>
    /// The noise multiplier left for the update when adaptive clipping spends part of the budget on the noisy
    /// count of unclipped clients (Andrew et al. 2021): <c>z_update = (z^-2 - (2 sigma_b)^-2)^(-1/2)</c>.
    /// </summary>
    public static double UpdateNoiseMultiplier(double z, double countNoise)
    {
        if (!(countNoise > z / 2))
            throw new ArgumentOutOfRangeException(nameof(countNoise), countNoise, $"The count noise must exceed half the noise multiplier ({z / 2}).");
        return 1 / Math.Sqrt((1 / (z * z)) - (1 / (4 * countNoise * countNoise)));
    }

    private static void Check(double q, double z)
    {
        if (!(q is >= 0 and <= 1))
            throw new ArgumentOutOfRangeException(nameof(q), q, "The sampling rate must lie in [0, 1].");
        if (!(z >= 0) || double.IsNaN(z))
            throw new ArgumentOutOfRangeException(nameof(z), z, "The noise multiplier must be non-negative.");
    }

    private static double LogAdd(double a, double b)
    {
        if (double.IsNegativeInfinity(a))
            return b;
        if (double.IsNegativeInfinity(b))
            return a;
        double hi = Math.Max(a, b);
        return hi + double.LogP1(Math.Exp(Math.Min(a, b) - hi));
    }
}

/// <summary>
/// An experiment's running privacy spend: RDP summed over the rounds released so far at every order, so epsilon
/// can be stated after each round; exported with the aggregator's state.
/// </summary>
public sealed class PrivacyLedger
{
    private const int StateVersion = 1;
    private readonly double[] _rdp = new double[RdpAccountant.Orders.Count];

    /// <summary>Rounds accounted.</summary>
    public int Rounds { get; private set; }

    /// <summary>Adds one released round of the sampled Gaussian at (q, z).</summary>
    public void Add(double q, double z)
    {
        for (int i = 0; i < _rdp.Length; i++)
            _rdp[i] += RdpAccountant.Rdp(q, z, RdpAccountant.Orders[i]);
        Rounds++;
    }

    public (double Epsilon, int Order) Epsilon(double delta) =>
        Rounds == 0 ? (0, RdpAccountant.MinOrder) : RdpAccountant.Epsilon(RdpAccountant.Orders, _rdp, delta);

    public byte[] Export()
    {
        var bytes = new byte[8 + (8 * _rdp.Length)];
        BinaryPrimitives.WriteInt32LittleEndian(bytes, StateVersion);
        BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(4), Rounds);
        for (int i = 0; i < _rdp.Length; i++)
            BinaryPrimitives.WriteDoubleLittleEndian(bytes.AsSpan(8 + (8 * i)), _rdp[i]);
        return bytes;
    }

    public static PrivacyLedger Import(ReadOnlySpan<byte> state)
    {
        var ledger = new PrivacyLedger();
        if (state.Length != 8 + (8 * ledger._rdp.Length) || BinaryPrimitives.ReadInt32LittleEndian(state) != StateVersion)
            throw new InvalidDataException($"The privacy ledger state holds {state.Length} bytes; version 1 holds {8 + (8 * ledger._rdp.Length)}.");
        ledger.Rounds = BinaryPrimitives.ReadInt32LittleEndian(state[4..]);
        for (int i = 0; i < ledger._rdp.Length; i++)
            ledger._rdp[i] = BinaryPrimitives.ReadDoubleLittleEndian(state[(8 + (8 * i))..]);
        return ledger;
    }
}
