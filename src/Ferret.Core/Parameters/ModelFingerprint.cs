using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Security.Cryptography;

namespace Ferret.Core.Parameters;

/// <summary>
/// The model fingerprint of shared-randomness.md: SHA-256 of the flat parameter vector as little-endian
/// float32 bytes, lower-case hex. Every participant reports it after each round; a mismatch is a bug or tampering.
/// </summary>
public static class ModelFingerprint
{
    public static string Compute(ReadOnlySpan<float> parameters)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        const int chunk = 1 << 20;
        if (BitConverter.IsLittleEndian)
        {
            for (int i = 0; i < parameters.Length; i += chunk)
                hash.AppendData(MemoryMarshal.AsBytes(parameters.Slice(i, Math.Min(chunk, parameters.Length - i))));
        }
        else
        {
            var buffer = new byte[4 * 1024];
            for (int i = 0; i < parameters.Length; i += 1024)
            {
                int n = Math.Min(1024, parameters.Length - i);
                for (int j = 0; j < n; j++)
                    BinaryPrimitives.WriteSingleLittleEndian(buffer.AsSpan(4 * j), parameters[i + j]);
                hash.AppendData(buffer, 0, 4 * n);
            }
        }
        return Convert.ToHexStringLower(hash.GetHashAndReset());
    }
}
