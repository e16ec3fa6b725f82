using System.Numerics;
using System.Security.Cryptography;

namespace Ferret.Core.Privacy;

/// <summary>
/// An elliptic-curve Diffie-Hellman key pair on NIST P-256 through the platform (.NET 10 has no X25519 API; P-256
/// ECDH is what <see cref="ECDiffieHellman"/> offers everywhere). Public keys travel as the 64 bytes <c>X || Y</c>
/// of the point; imported points are validated by the platform, so an off-curve point is refused.
/// </summary>
public sealed class AgreementKeyPair : IDisposable
{
    /// <summary>Bytes of a public key: the affine coordinates X and Y, 32 bytes each.</summary>
    public const int PublicKeyBytes = 64;

    /// <summary>Bytes of a private scalar.</summary>
    public const int PrivateKeyBytes = 32;

    // The order n of P-256's base point (FIPS 186-4, D.1.2.3), big-endian.
    private static readonly BigInteger Order = BigInteger.Parse("0FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551",
        System.Globalization.NumberStyles.HexNumber, System.Globalization.CultureInfo.InvariantCulture);

    private readonly ECDiffieHellman _key;

    private AgreementKeyPair(ECDiffieHellman key)
    {
        _key = key;
        var p = key.ExportParameters(false);
        PublicKey = [.. p.Q.X!, .. p.Q.Y!];
    }

    /// <summary>The public key, <c>X || Y</c>.</summary>
    public byte[] PublicKey { get; }

    /// <summary>A fresh key pair from the platform's key generation.</summary>
    public static AgreementKeyPair Generate() => new(ECDiffieHellman.Create(ECCurve.NamedCurves.nistP256));

    /// <summary>The key pair of a private scalar (big-endian, 32 bytes) in [1, n - 1]; false when it is out of range.</summary>
    public static bool TryFromPrivateScalar(ReadOnlySpan<byte> d, out AgreementKeyPair pair)
    {
        pair = null!;
        if (d.Length != PrivateKeyBytes)
            return false;
        var value = new BigInteger(d, isUnsigned: true, isBigEndian: true);
        if (value.IsZero || value >= Order)
            return false;
        pair = new AgreementKeyPair(ECDiffieHellman.Create(new ECParameters { Curve = ECCurve.NamedCurves.nistP256, D = d.ToArray() }));
        return true;
    }

    /// <summary>
    /// Rebuilds a key pair from a reconstructed private scalar and checks it against the public key its owner
    /// advertised; a mismatch means the scalar is not that owner's (forged or corrupted shares).
    /// </summary>
    public static AgreementKeyPair FromPrivateScalar(ReadOnlySpan<byte> d, ReadOnlySpan<byte> expectedPublicKey)
    {
        if (!TryFromPrivateScalar(d, out var pair))
            throw new InvalidDataException("The reconstructed private key is not a valid P-256 scalar.");
        if (!pair.PublicKey.AsSpan().SequenceEqual(expectedPublicKey))
        {
            pair.Dispose();
            throw new InvalidDataException("The reconstructed private key does not belong to the advertised public key.");
        }
        return pair;
    }

    /// <summary>The private scalar, big-endian: what gets secret-shared so others can remove a dropped client's masks.</summary>
    public byte[] ExportPrivateScalar()
    {
        var d = _key.ExportParameters(true).D!;
        if (d.Length == PrivateKeyBytes)
            return d;
        var padded = new byte[PrivateKeyBytes];
        d.CopyTo(padded, PrivateKeyBytes - d.Length);
        return padded;
    }

    /// <summary>The raw shared secret (the X coordinate of the shared point) with the holder of <paramref name="otherPublicKey"/>.</summary>
    public byte[] Agree(ReadOnlySpan<byte> otherPublicKey)
    {
        using var other = ImportPublic(otherPublicKey);
        return _key.DeriveRawSecretAgreement(other.PublicKey);
    }

    /// <summary>The raw shared secret with a public key imported (and validated) once.</summary>
    public byte[] Agree(AgreementPublicKey other)
    {
        ArgumentNullException.ThrowIfNull(other);
        return _key.DeriveRawSecretAgreement(other.Key.PublicKey);
    }

    /// <summary>Checks a public key without keeping it: null when it is a valid P-256 point, else why not.</summary>
    public static string? Validate(ReadOnlySpan<byte> publicKey)
    {
        try
        {
            using var _ = ImportPublic(publicKey);
            return null;
        }
        catch (Exception e) when (e is CryptographicException or ArgumentException)
        {
            return e.Message;
        }
    }

    internal static ECDiffieHellman ImportPublic(ReadOnlySpan<byte> key)
    {
        if (key.Length != PublicKeyBytes)
            throw new ArgumentException($"A public key is {PublicKeyBytes} bytes (X || Y); got {key.Length}.");
        return ECDiffieHellman.Create(new ECParameters
        {
            Curve = ECCurve.NamedCurves.nistP256,
            Q = new ECPoint { X = key[..32].ToArray(), Y = key[32..].ToArray() },
        });
    }

    public void Dispose() => _key.Dispose();
}

/// <summary>
/// A peer's P-256 public key imported once: the platform validates the point on import, which costs about as
/// much as an agreement, so a client that agrees with the same neighbour several times imports it once.
/// </summary>
public sealed class AgreementPublicKey : IDisposable
{
    private AgreementPublicKey(ECDiffieHellman key) => Key = key;

    internal ECDiffieHellman Key { get; }

    /// <summary>Imports and validates <c>X || Y</c>; null, with the reason, when it is not a P-256 point.</summary>
    public static AgreementPublicKey? TryImport(ReadOnlySpan<byte> publicKey, out string? reason)
    {
        try
        {
            reason = null;
            return new AgreementPublicKey(AgreementKeyPair.ImportPublic(publicKey));
        }
        catch (Exception e) when (e is CryptographicException or ArgumentException)
        {
            reason = e.Message;
            return null;
        }
    }

    public void Dispose() => Key.Dispose();
}
