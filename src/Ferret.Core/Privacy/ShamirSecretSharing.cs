using System.Buffers.Binary;

namespace Ferret.Core.Privacy;

/// <summary>One holder's share of a secret: the holder's point <c>x</c> and the polynomial values at it, one per chunk.</summary>
public sealed record SecretShare(int X, ulong[] Values)
{
    /// <summary>Bytes on the wire: 8 little-endian bytes per chunk value.</summary>
    public byte[] ToBytes()
    {
        var bytes = new byte[8 * Values.Length];
        for (int i = 0; i < Values.Length; i++)
            BinaryPrimitives.WriteUInt64LittleEndian(bytes.AsSpan(8 * i), Values[i]);
        return bytes;
    }

    /// <summary>Reads a share; every value must be a field element.</summary>
    public static SecretShare FromBytes(int x, ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length == 0 || bytes.Length % 8 != 0)
            throw new InvalidDataException($"A share is a non-empty multiple of 8 bytes; got {bytes.Length}.");
        var values = new ulong[bytes.Length / 8];
        for (int i = 0; i < values.Length; i++)
        {
            values[i] = BinaryPrimitives.ReadUInt64LittleEndian(bytes[(8 * i)..]);
            if (values[i] >= PrimeField.P)
                throw new InvalidDataException($"Share value {i} is not an element of the field.");
        }
        return new SecretShare(x, values);
    }
}

/// <summary>
/// Shamir's (t, n) threshold secret sharing over the field of <c>2^61 - 1</c> (<see cref="PrimeField"/>). A
/// byte secret is cut into 7-byte chunks (each below <c>2^56 &lt; p</c>); each chunk is the constant term of its
/// own random polynomial of degree <c>t - 1</c>, evaluated at every holder's non-zero point. Any t shares give the
/// secret back by Lagrange interpolation at 0; fewer than t are consistent with every secret alike, so they
/// reveal nothing about it.
/// </summary>
public static class ShamirSecretSharing
{
    /// <summary>Bytes of secret per field element.</summary>
    public const int ChunkBytes = 7;

    /// <summary>Field elements a secret of <paramref name="secretBytes"/> bytes takes.</summary>
    public static int Chunks(int secretBytes) => (secretBytes + ChunkBytes - 1) / ChunkBytes;

    /// <summary>Shares of <paramref name="secret"/> for the holders at <paramref name="points"/> (distinct, 1 to p - 1); any <paramref name="threshold"/> recover it.</summary>
    public static SecretShare[] Split(ReadOnlySpan<byte> secret, int threshold, IReadOnlyList<int> points, ISecretSource random)
    {
        ArgumentNullException.ThrowIfNull(points);
        ArgumentNullException.ThrowIfNull(random);
        if (secret.IsEmpty)
            throw new ArgumentException("The secret is empty.", nameof(secret));
        CheckPoints(points, threshold);
        if (threshold > points.Count)
            throw new ArgumentException($"A threshold of {threshold} needs at least {threshold} holders; there are {points.Count}.", nameof(threshold));
        int chunks = Chunks(secret.Length);
        var values = new ulong[points.Count][];
        for (int j = 0; j < points.Count; j++)
            values[j] = new ulong[chunks];
        var coefficients = new ulong[threshold];
        Span<byte> chunk = stackalloc byte[8];
        for (int c = 0; c < chunks; c++)
        {
            chunk.Clear();
            var piece = secret.Slice(c * ChunkBytes, Math.Min(ChunkBytes, secret.Length - (c * ChunkBytes)));
            piece.CopyTo(chunk);
            coefficients[0] = BinaryPrimitives.ReadUInt64LittleEndian(chunk);
            for (int i = 1; i < threshold; i++)
                coefficients[i] = RandomElement(random);
            for (int j = 0; j < points.Count; j++)
                values[j][c] = Evaluate(coefficients, (ulong)points[j]);
        }
        var shares = new SecretShare[points.Count];
        for (int j = 0; j < points.Count; j++)
            shares[j] = new SecretShare(points[j], values[j]);
        return shares;
    }

    /// <summary>
    /// The secret of <paramref name="secretBytes"/> bytes from at least <paramref name="threshold"/> shares. The first
    /// t shares interpolate; with <paramref name="verifyAll"/> every further share must lie on the same polynomials,
    /// else the shares are inconsistent (one of them forged or corrupted) and this throws, naming the point. Callers
    /// that checked each share against a commitment already may skip that work.
    /// </summary>
    public static byte[] Reconstruct(IReadOnlyList<SecretShare> shares, int threshold, int secretBytes, bool verifyAll = true)
    {
        ArgumentNullException.ThrowIfNull(shares);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(secretBytes);
        if (threshold < 1)
            throw new ArgumentOutOfRangeException(nameof(threshold), threshold, "The threshold is at least 1.");
        if (shares.Count < threshold)
            throw new InvalidOperationException($"{shares.Count} shares cannot recover a secret shared with threshold {threshold}.");
        CheckPoints(shares.Select(s => s.X).ToList(), threshold);
        int chunks = Chunks(secretBytes);
        foreach (var s in shares)
        {
            if (s.Values.Length != chunks)
                throw new InvalidDataException($"The share at x = {s.X} has {s.Values.Length} values; a {secretBytes}-byte secret takes {chunks}.");
        }
        var basis = shares.Take(threshold).ToArray();
        var lagrangeAtZero = LagrangeWeights(basis, 0);
        var secret = new byte[chunks * 8];
        for (int c = 0; c < chunks; c++)
        {
            ulong value = 0;
            for (int j = 0; j < threshold; j++)
                value = PrimeField.Add(value, PrimeField.Multiply(lagrangeAtZero[j], basis[j].Values[c]));
            if (value >= 1UL << (8 * ChunkBytes))
                throw new InvalidDataException("The shares interpolate to a value no secret chunk can have: they are inconsistent.");
            BinaryPrimitives.WriteUInt64LittleEndian(secret.AsSpan(c * ChunkBytes), value);
        }
        for (int k = threshold; verifyAll && k < shares.Count; k++)
        {
            var weights = LagrangeWeights(basis, (ulong)shares[k].X);
            for (int c = 0; c < chunks; c++)
            {
                ulong expected = 0;
                for (int j = 0; j < threshold; j++)
                    expected = PrimeField.Add(expected, PrimeField.Multiply(weights[j], basis[j].Values[c]));
                if (expected != shares[k].Values[c])
                    throw new InvalidDataException($"The share at x = {shares[k].X} does not lie on the polynomial of the others: the shares are inconsistent.");
            }
        }
        return secret[..secretBytes];
    }

    /// <summary>Lagrange weights <c>l_j(x) = prod_{m != j} (x - x_m) / (x_j - x_m)</c> of the basis points.</summary>
    internal static ulong[] LagrangeWeights(IReadOnlyList<SecretShare> basis, ulong x)
    {
        var weights = new ulong[basis.Count];
        for (int j = 0; j < basis.Count; j++)
        {
            ulong num = 1, den = 1;
            ulong xj = (ulong)basis[j].X;
            for (int m = 0; m < basis.Count; m++)
            {
                if (m == j)
                    continue;
                ulong xm = (ulong)basis[m].X;
                num = PrimeField.Multiply(num, PrimeField.Subtract(x, xm));
                den = PrimeField.Multiply(den, PrimeField.Subtract(xj, xm));
            }
            weights[j] = PrimeField.Multiply(num, PrimeField.Inverse(den));
        }
        return weights;
    }

    private static ulong Evaluate(ReadOnlySpan<ulong> coefficients, ulong x)
    {
        ulong y = 0;
        for (int i = coefficients.Length - 1; i >= 0; i--)
            y = PrimeField.Add(PrimeField.Multiply(y, x), coefficients[i]);
        return y;
    }

    private static ulong RandomElement(ISecretSource random)
    {
        Span<byte> bytes = stackalloc byte[8];
        while (true)
        {
            random.Fill(bytes);
            if (PrimeField.TryFromRandom(BinaryPrimitives.ReadUInt64LittleEndian(bytes), out var e))
                return e;
        }
    }

    private static void CheckPoints(IReadOnlyList<int> points, int threshold)
    {
        if (threshold < 1)
            throw new ArgumentOutOfRangeException(nameof(threshold), threshold, "The threshold is at least 1.");
        var seen = new HashSet<int>();
        foreach (var x in points)
        {
            if (x <= 0)
                throw new ArgumentException($"Share point {x} is not positive (x = 0 is the secret itself).");
            if (!seen.Add(x))
                throw new ArgumentException($"Share point {x} appears twice.");
        }
    }
}
