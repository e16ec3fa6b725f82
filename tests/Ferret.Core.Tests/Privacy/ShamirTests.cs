using System.Numerics;
using Ferret.Core.Privacy;
using FsCheck;
using FsCheck.Fluent;

namespace Ferret.Core.Tests.Privacy;

public sealed class ShamirTests
{
    private static readonly BigInteger P = PrimeField.P;

    [Fact]
    public void Field_products_and_inverses_agree_with_big_integer_arithmetic()
    {
        Prop.ForAll(Gen.Choose(0, int.MaxValue).Two().ToArbitrary(), ((int A, int B) x) =>
        {
            ulong a = ((ulong)x.A * 0x9E3779B97F4A7C15UL) % PrimeField.P;
            ulong b = ((ulong)x.B * 0xBF58476D1CE4E5B9UL) % PrimeField.P;
            bool product = PrimeField.Multiply(a, b) == (ulong)(a * (BigInteger)b % P);
            bool sum = PrimeField.Add(a, b) == (ulong)((a + (BigInteger)b) % P);
            bool difference = PrimeField.Subtract(a, b) == (ulong)((((a - (BigInteger)b) % P) + P) % P);
            bool inverse = a == 0 || PrimeField.Multiply(a, PrimeField.Inverse(a)) == 1;
            return product && sum && difference && inverse;
        }).QuickCheckThrowOnFailure();
        Assert.Equal(PrimeField.P - 1, PrimeField.Multiply(PrimeField.P - 1, 1));
        Assert.Equal(1UL, PrimeField.Multiply(PrimeField.P - 1, PrimeField.P - 1)); // (-1)^2
        Assert.Throws<DivideByZeroException>(() => PrimeField.Inverse(0));
    }

    [Fact]
    public void Any_threshold_of_the_shares_recovers_the_secret()
    {
        var source = new SeededSecrets(1);
        Prop.ForAll(Gen.Choose(2, 12).SelectMany(n => Gen.Choose(2, n).Select(t => (n, t))).ToArbitrary(), ((int N, int T) p) =>
        {
            var secret = new byte[32];
            source.Fill(secret);
            var points = Enumerable.Range(1, p.N).Select(i => i * 7).ToArray();
            var shares = ShamirSecretSharing.Split(secret, p.T, points, source);
            var pick = shares.OrderBy(_ => new Random(p.N * 31 + p.T).Next()).Take(p.T).ToList();
            return ShamirSecretSharing.Reconstruct(pick, p.T, secret.Length).AsSpan().SequenceEqual(secret)
                && ShamirSecretSharing.Reconstruct(shares, p.T, secret.Length).AsSpan().SequenceEqual(secret);
        }).QuickCheckThrowOnFailure();
    }

    [Fact]
    public void Fewer_than_threshold_shares_are_refused()
    {
        var source = new SeededSecrets(2);
        var secret = Enumerable.Range(0, 32).Select(i => (byte)i).ToArray();
        var shares = ShamirSecretSharing.Split(secret, 4, [1, 2, 3, 4, 5], source);
        var e = Assert.Throws<InvalidOperationException>(() => ShamirSecretSharing.Reconstruct(shares[..3], 4, 32));
        Assert.Contains("3 shares cannot recover a secret shared with threshold 4", e.Message);
        // Pretending the threshold were lower interpolates the wrong polynomial: no secret, or not this one.
        Assert.False(RecoversWithTooFew(shares[..3], 32, s => s.AsSpan().SequenceEqual(secret)), "three shares of a degree-3 sharing must not give the secret");
    }

    [Fact]
    public void Fewer_than_threshold_shares_are_consistent_with_every_secret()
    {
        // Perfect secrecy: for t - 1 shares of secret A and any other secret B, some degree-(t-1) polynomial with
        // constant term B passes through those same shares, so the holders of t - 1 shares cannot tell A from B.
        var source = new SeededSecrets(3);
        var a = Enumerable.Repeat((byte)0xAA, 32).ToArray();
        var b = Enumerable.Repeat((byte)0x11, 32).ToArray();
        const int t = 4;
        var shares = ShamirSecretSharing.Split(a, t, [3, 5, 8, 13, 21], source);
        var seen = shares[..(t - 1)];
        var completion = CompleteTowards(b, seen, 99);
        var rebuilt = ShamirSecretSharing.Reconstruct([.. seen, completion], t, 32);
        Assert.Equal(b, rebuilt);
    }

    [Fact]
    public void One_share_of_a_two_out_of_n_sharing_is_uniform_whatever_the_secret()
    {
        // The top byte of share values over 20,000 sharings of an all-zero and an all-0xFF secret: both uniform
        // (chi-square over 256 bins below the 0.999 quantile of chi-square with 255 degrees of freedom, 330.5).
        foreach (byte fill in new byte[] { 0x00, 0xFF })
        {
            var source = new SeededSecrets(40UL + fill);
            var counts = new long[256];
            var secret = Enumerable.Repeat(fill, 7).ToArray();
            for (int i = 0; i < 20_000; i++)
            {
                var share = ShamirSecretSharing.Split(secret, 2, [1, 2], source)[0];
                counts[(int)(share.Values[0] >> 53)]++;
            }
            double chi = Statistics.ChiSquareUniform(counts);
            Assert.True(chi < 330.5, $"share values for secret 0x{fill:X2} are not uniform: chi-square {chi:F1} >= 330.5");
        }
    }

    [Fact]
    public void An_inconsistent_share_is_named()
    {
        var source = new SeededSecrets(4);
        var secret = new byte[32];
        source.Fill(secret);
        var shares = ShamirSecretSharing.Split(secret, 3, [1, 2, 3, 4], source);
        shares[3].Values[2] = PrimeField.Add(shares[3].Values[2], 1);
        var e = Assert.Throws<InvalidDataException>(() => ShamirSecretSharing.Reconstruct(shares, 3, 32));
        Assert.Contains("x = 4", e.Message);
    }

    [Fact]
    public void Bad_points_and_malformed_shares_are_refused()
    {
        var source = new SeededSecrets(5);
        Assert.Throws<ArgumentException>(() => ShamirSecretSharing.Split(new byte[8], 2, [1, 1, 2], source));
        Assert.Throws<ArgumentException>(() => ShamirSecretSharing.Split(new byte[8], 2, [0, 1], source));
        Assert.Throws<ArgumentException>(() => ShamirSecretSharing.Split(new byte[8], 3, [1, 2], source));
        Assert.Throws<InvalidDataException>(() => SecretShare.FromBytes(1, new byte[7]));
        Assert.Throws<InvalidDataException>(() => SecretShare.FromBytes(1, BitConverter.GetBytes(ulong.MaxValue)));
        var share = ShamirSecretSharing.Split(new byte[32], 2, [1, 2], source)[0];
        Assert.Equal(share.Values, SecretShare.FromBytes(1, share.ToBytes()).Values);
    }

    /// <summary>Whether interpolating the given (too few) shares as if they were enough yields a secret the check accepts.</summary>
    internal static bool RecoversWithTooFew(IReadOnlyList<SecretShare> shares, int bytes, Func<byte[], bool> isSecret)
    {
        try
        {
            return isSecret(ShamirSecretSharing.Reconstruct(shares, shares.Count, bytes, verifyAll: false));
        }
        catch (InvalidDataException)
        {
            return false; // the interpolated constant term is not even a possible secret
        }
    }

    /// <summary>The share at <paramref name="x"/> of the polynomial through (0, secret) and the given shares.</summary>
    private static SecretShare CompleteTowards(byte[] secret, SecretShare[] shares, int x)
    {
        int chunks = ShamirSecretSharing.Chunks(secret.Length);
        var values = new ulong[chunks];
        for (int c = 0; c < chunks; c++)
        {
            var piece = new byte[8];
            secret.AsSpan(c * 7, Math.Min(7, secret.Length - (c * 7))).CopyTo(piece);
            var points = shares.Select(s => (X: (ulong)s.X, Y: s.Values[c])).Prepend((X: 0UL, Y: BitConverter.ToUInt64(piece))).ToArray();
            ulong y = 0;
            for (int j = 0; j < points.Length; j++)
            {
                ulong num = 1, den = 1;
                for (int m = 0; m < points.Length; m++)
                {
                    if (m == j)
                        continue;
                    num = PrimeField.Multiply(num, PrimeField.Subtract((ulong)x, points[m].X));
                    den = PrimeField.Multiply(den, PrimeField.Subtract(points[j].X, points[m].X));
                }
                y = PrimeField.Add(y, PrimeField.Multiply(points[j].Y, PrimeField.Multiply(num, PrimeField.Inverse(den))));
            }
            values[c] = y;
        }
        return new SecretShare(x, values);
    }
}
