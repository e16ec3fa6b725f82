using System.Buffers.Binary;
using System.Numerics;

namespace Ferret.Core.Privacy;

/// <summary>
/// Exact sampling of the discrete Gaussian <c>N_Z(0, sigma^2)</c>, <c>P(x) proportional to exp(-x^2 / (2 sigma^2))</c> over
/// the integers, by the rejection sampler of Canonne, Kamath and Steinke (2020, Algorithms 1-3): discrete Laplace
/// proposals, accepted with Bernoulli(exp(-gamma)) coins built from uniform integers only, in exact rational
/// arithmetic (sigma^2 is the exact value of the double <c>sigma * sigma</c>). No floating point touches the
/// sample, so the noise has none of the rounding artefacts floating-point Gaussian samplers leak (Mironov 2012).
/// Integer noise is what Ferret.NET adds to fixed-point sums, centrally or split across clients.
/// </summary>
public sealed class DiscreteGaussian
{
    private readonly ISecretSource _source;
    private readonly byte[] _buffer = new byte[4096];
    private int _available;

    public DiscreteGaussian(ISecretSource source)
    {
        ArgumentNullException.ThrowIfNull(source);
        _source = source;
    }

    /// <summary>One sample of <c>N_Z(0, sigma^2)</c>; sigma 0 gives 0.</summary>
    public long Sample(double sigma)
    {
        if (!(sigma >= 0) || !double.IsFinite(sigma))
            throw new ArgumentOutOfRangeException(nameof(sigma), sigma, "The noise scale must be finite and non-negative.");
        if (sigma == 0)
            return 0;
        var (num, den) = Rational(sigma * sigma);
        long t = (long)Math.Floor(sigma) + 1;
        var tBig = new BigInteger(t);
        var twoT2DenNum = 2 * tBig * tBig * den * num;
        while (true)
        {
            long y = DiscreteLaplace(t);
            // gamma = (|y| - sigma^2 / t)^2 / (2 sigma^2) = (|y| t den - num)^2 / (2 t^2 den num)
            var diff = (BigInteger.Abs(y) * tBig * den) - num;
            if (BernoulliExp(diff * diff, twoT2DenNum))
                return y;
        }
    }

    /// <summary>Adds independent <c>N_Z(0, sigma^2)</c> noise to every value.</summary>
    public void AddNoise(Span<long> values, double sigma)
    {
        for (int i = 0; i < values.Length; i++)
            values[i] = checked(values[i] + Sample(sigma));
    }

    /// <summary>Discrete Laplace with scale t: <c>P(x) proportional to exp(-|x| / t)</c> (CKS Algorithm 2, s = 1).</summary>
    internal long DiscreteLaplace(long t)
    {
        while (true)
        {
            long u = (long)UniformBelow((ulong)t);
            if (!BernoulliExp(u, t))
                continue;
            long v = 0;
            while (BernoulliExp(BigInteger.One, BigInteger.One))
                v++;
            long x = checked(u + (t * v));
            bool negative = (NextByte() & 1) == 1;
            if (negative && x == 0)
                continue;
            return negative ? -x : x;
        }
    }

    /// <summary>A coin that is true with probability <c>exp(-n / d)</c> (CKS Algorithm 1).</summary>
    internal bool BernoulliExp(BigInteger n, BigInteger d)
    {
        if (n.Sign < 0 || d.Sign <= 0)
            throw new ArgumentOutOfRangeException(nameof(n), "gamma = n / d must be non-negative.");
        if (n > d)
        {
            var whole = BigInteger.DivRem(n, d, out var rest);
            for (BigInteger i = 0; i < whole; i++)
            {
                if (!BernoulliExp(BigInteger.One, BigInteger.One))
                    return false;
            }
            return BernoulliExp(rest, d);
        }
        long k = 1;
        while (Bernoulli(n, d * k))
            k++;
        return (k & 1) == 1;
    }

    private bool Bernoulli(BigInteger n, BigInteger d) => UniformBelow(d) < n;

    /// <summary>A uniform integer in [0, d) by rejection over the fewest whole bytes that cover d.</summary>
    internal BigInteger UniformBelow(BigInteger d)
    {
        if (d <= ulong.MaxValue)
            return UniformBelow((ulong)d);
        long bits = d.GetBitLength();
        int bytes = (int)((bits + 7) / 8);
        var buffer = new byte[bytes];
        int excess = (int)((8 * bytes) - bits);
        while (true)
        {
            Fill(buffer);
            buffer[^1] &= (byte)(0xFF >> excess);
            var value = new BigInteger(buffer, isUnsigned: true);
            if (value < d)
                return value;
        }
    }

    private ulong UniformBelow(ulong d)
    {
        if (d == 0)
            throw new ArgumentOutOfRangeException(nameof(d), "No integer lies below 0.");
        int bits = 64 - BitOperations.LeadingZeroCount(d - 1);
        if (bits == 0)
            return 0;
        ulong mask = bits == 64 ? ulong.MaxValue : (1UL << bits) - 1;
        Span<byte> word = stackalloc byte[8];
        while (true)
        {
            Fill(word);
            ulong value = BinaryPrimitives.ReadUInt64LittleEndian(word) & mask;
            if (value < d)
                return value;
        }
    }

    private byte NextByte()
    {
        Span<byte> b = stackalloc byte[1];
        Fill(b);
        return b[0];
    }

    private void Fill(Span<byte> destination)
    {
        while (!destination.IsEmpty)
        {
            if (_available == 0)
            {
                _source.Fill(_buffer);
                _available = _buffer.Length;
            }
            int take = Math.Min(_available, destination.Length);
            _buffer.AsSpan(_buffer.Length - _available, take).CopyTo(destination);
            _available -= take;
            destination = destination[take..];
        }
    }

    /// <summary>The exact value of a finite positive double as numerator / power-of-two denominator, in lowest terms.</summary>
    internal static (BigInteger Numerator, BigInteger Denominator) Rational(double value)
    {
        if (!(value > 0) || !double.IsFinite(value))
            throw new ArgumentOutOfRangeException(nameof(value), value, "Expected a finite positive number.");
        long bits = BitConverter.DoubleToInt64Bits(value);
        int exponent = (int)((bits >> 52) & 0x7FF);
        long mantissa = bits & 0xFFFFFFFFFFFFFL;
        if (exponent == 0)
            exponent = 1;
        else
            mantissa |= 1L << 52;
        exponent -= 1075;
        while (exponent < 0 && (mantissa & 1) == 0)
        {
            mantissa >>= 1;
            exponent++;
        }
        return exponent >= 0
            ? (new BigInteger(mantissa) << exponent, BigInteger.One)
            : (new BigInteger(mantissa), BigInteger.One << -exponent);
    }
}
