using System.Security.Cryptography;

namespace Ferret.Coordinator.Security;

/// <summary>Bearer tokens: random, URL-safe, stored only as SHA-256 digests.</summary>
public static class Tokens
{
    /// <summary>A fresh token with 256 bits of entropy.</summary>
    public static string New(string prefix)
    {
        Span<byte> bytes = stackalloc byte[32];
        RandomNumberGenerator.Fill(bytes);
        return prefix + Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');
    }

    /// <summary>Lower-case hex SHA-256 of the token's UTF-8 bytes: what the round log stores.</summary>
    public static string Digest(string token)
    {
        ArgumentNullException.ThrowIfNull(token);
        return Convert.ToHexStringLower(SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(token)));
    }

    /// <summary>Compares secrets in constant time so response timing reveals nothing.</summary>
    public static bool SecretEquals(string a, string b)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        return CryptographicOperations.FixedTimeEquals(SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(a)), SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(b)));
    }
}
