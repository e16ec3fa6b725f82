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
        using var fingerprint = new Incremental();
        fingerprint.Append(parameters);
        return fingerprint.Finish();
    }

    /// <summary>
    /// The fingerprint of a vector fed in pieces, in flat order (a model too large to hold at once):
    /// <see cref="Finish"/> equals <see cref="Compute"/> of the pieces laid end to end.
    /// </summary>
    public sealed class Incremental : IDisposable
    {
        private const int Chunk = 1 << 20;
        private readonly IncrementalHash _hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        private byte[]? _buffer;
        private bool _finished;

        /// <summary>Elements hashed so far.</summary>
        public long Count { get; private set; }

        public void Append(ReadOnlySpan<float> values)
        {
            ObjectDisposedException.ThrowIf(_finished, this);
            if (BitConverter.IsLittleEndian)
            {
                for (int i = 0; i < values.Length; i += Chunk)
                    _hash.AppendData(MemoryMarshal.AsBytes(values.Slice(i, Math.Min(Chunk, values.Length - i))));
            }
            else
            {
                _buffer ??= new byte[4 * 1024];
                for (int i = 0; i < values.Length; i += 1024)
                {
                    int n = Math.Min(1024, values.Length - i);
                    for (int j = 0; j < n; j++)
                        BinaryPrimitives.WriteSingleLittleEndian(_buffer.AsSpan(4 * j), values[i + j]);
                    _hash.AppendData(_buffer, 0, 4 * n);
                }
            }
            Count += values.Length;
        }

        /// <summary>The fingerprint of everything appended; the instance takes no more values afterwards.</summary>
        public string Finish()
        {
            ObjectDisposedException.ThrowIf(_finished, this);
            _finished = true;
            return Convert.ToHexStringLower(_hash.GetHashAndReset());
        }

        public void Dispose()
        {
            _finished = true;
            _hash.Dispose();
        }
    }
}
