using System.Security.Cryptography;
using System.Text;

namespace Ferret.Core.Privacy;

/// <summary>
/// The key derivations, share encryption and commitments of secure aggregation, all from the platform: HKDF-SHA256
/// turns a raw ECDH secret into a mask seed or a share key bound to the experiment, the round and the (ordered)
/// pair of clients; AES-256-GCM encrypts shares with the sender and recipient as associated data; SHA-256 commits
/// to every share so the coordinator can tell a forged or replayed share from a genuine one.
/// </summary>
public static class SecureAggregationCrypto
{
    /// <summary>Domain separator of protocol version 1; bound into every derivation, commitment and associated data.</summary>
    public const string Domain = "ferret.secagg.v1";

    private const int NonceBytes = 12;
    private const int TagBytes = 16;
    private static readonly byte[] Salt = Encoding.UTF8.GetBytes(Domain);

    /// <summary>The 32-byte mask seed two clients share in a round (the same for both: the ids are ordered).</summary>
    public static byte[] MaskSeed(ReadOnlySpan<byte> sharedSecret, string experimentId, int round, string a, string b) =>
        Derive(sharedSecret, "mask", experimentId, round, a, b);

    /// <summary>The AES-256-GCM key two clients use for the shares they send each other in a round.</summary>
    public static byte[] ShareKey(ReadOnlySpan<byte> sharedSecret, string experimentId, int round, string a, string b) =>
        Derive(sharedSecret, "share", experimentId, round, a, b);

    /// <summary>Encrypts a share bundle from <paramref name="from"/> to <paramref name="to"/>: nonce || ciphertext || tag.</summary>
    public static byte[] Encrypt(ReadOnlySpan<byte> key, ReadOnlySpan<byte> plaintext, string experimentId, int round, string from, string to, ISecretSource random)
    {
        ArgumentNullException.ThrowIfNull(random);
        var output = new byte[NonceBytes + plaintext.Length + TagBytes];
        var nonce = output.AsSpan(0, NonceBytes);
        random.Fill(nonce);
        using var gcm = new AesGcm(key, TagBytes);
        gcm.Encrypt(nonce, plaintext, output.AsSpan(NonceBytes, plaintext.Length), output.AsSpan(NonceBytes + plaintext.Length), AssociatedData(experimentId, round, from, to));
        return output;
    }

    /// <summary>Decrypts a share bundle; null when it does not authenticate (a different key, round, sender or recipient, or altered bytes).</summary>
    public static byte[]? Decrypt(ReadOnlySpan<byte> key, ReadOnlySpan<byte> ciphertext, string experimentId, int round, string from, string to)
    {
        if (ciphertext.Length < NonceBytes + TagBytes)
            return null;
        var plaintext = new byte[ciphertext.Length - NonceBytes - TagBytes];
        using var gcm = new AesGcm(key, TagBytes);
        try
        {
            gcm.Decrypt(ciphertext[..NonceBytes], ciphertext.Slice(NonceBytes, plaintext.Length), ciphertext[^TagBytes..], plaintext,
                AssociatedData(experimentId, round, from, to));
            return plaintext;
        }
        catch (AuthenticationTagMismatchException)
        {
            return null;
        }
    }

    /// <summary>SHA-256 commitment to one share: what the dealer publishes and the coordinator checks a revealed share against.</summary>
    public static byte[] Commitment(string experimentId, int round, string dealer, string holder, ShareKind kind, ReadOnlySpan<byte> share)
    {
        var header = Encoding.UTF8.GetBytes($"{Domain}|commit|{experimentId}|{round}|{dealer}|{holder}|{(int)kind}|");
        var data = new byte[header.Length + share.Length];
        header.CopyTo(data, 0);
        share.CopyTo(data.AsSpan(header.Length));
        return SHA256.HashData(data);
    }

    /// <summary>SHA-256 commitment to a client's self-mask seed, checked after the coordinator reconstructs it.</summary>
    public static byte[] SeedCommitment(string experimentId, int round, string owner, ReadOnlySpan<byte> seed)
    {
        var header = Encoding.UTF8.GetBytes($"{Domain}|self-mask|{experimentId}|{round}|{owner}|");
        var data = new byte[header.Length + seed.Length];
        header.CopyTo(data, 0);
        seed.CopyTo(data.AsSpan(header.Length));
        return SHA256.HashData(data);
    }

    private static byte[] Derive(ReadOnlySpan<byte> sharedSecret, string purpose, string experimentId, int round, string a, string b)
    {
        var (lo, hi) = string.CompareOrdinal(a, b) <= 0 ? (a, b) : (b, a);
        var info = Encoding.UTF8.GetBytes($"{Domain}|{purpose}|{experimentId}|{round}|{lo}|{hi}");
        return HKDF.DeriveKey(HashAlgorithmName.SHA256, sharedSecret.ToArray(), MaskGenerator.SeedBytes, Salt, info);
    }

    private static byte[] AssociatedData(string experimentId, int round, string from, string to) =>
        Encoding.UTF8.GetBytes($"{Domain}|share|{experimentId}|{round}|{from}|{to}");
}
