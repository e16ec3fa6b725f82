using System.Buffers;
using System.Buffers.Binary;
using System.Numerics.Tensors;
using System.Runtime.InteropServices;
using System.Security.Cryptography;

namespace Ferret.Core.Privacy;

/// <summary>
/// The pseudo-random generator that expands a 32-byte seed into a mask over Z_2^32: AES-256 in counter mode
/// through the platform's AES (<see cref="Aes.EncryptEcb(ReadOnlySpan{byte}, Span{byte}, PaddingMode)"/> over
/// consecutive counter blocks, a 128-bit little-endian counter from 0). Word <c>i</c> of the mask is bytes
/// <c>4i..4i+3</c> of the key stream, little-endian. Adding and subtracting wrap modulo 2^32.
/// </summary>
public static class MaskGenerator
{
    /// <summary>Seed length: an AES-256 key.</summary>
    public const int SeedBytes = 32;

    private const int BlockBytes = 16;
    private const int WordsPerPiece = 16 * 1024; // 64 KiB of key stream at a time

    /// <summary>Adds the mask of <paramref name="seed"/> to <paramref name="vector"/>, word by word, modulo 2^32.</summary>
    public static void Add(ReadOnlySpan<byte> seed, Span<uint> vector) => Apply(seed, vector, subtract: false);

    /// <summary>Subtracts the mask of <paramref name="seed"/> from <paramref name="vector"/>, modulo 2^32.</summary>
    public static void Subtract(ReadOnlySpan<byte> seed, Span<uint> vector) => Apply(seed, vector, subtract: true);

    /// <summary>The first <paramref name="words"/> words of the mask itself.</summary>
    public static uint[] Generate(ReadOnlySpan<byte> seed, int words)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(words);
        var mask = new uint[words];
        Add(seed, mask);
        return mask;
    }

    /// <summary>Fills <paramref name="destination"/> with key-stream bytes (counter blocks from <paramref name="firstBlock"/>).</summary>
    public static void Fill(ReadOnlySpan<byte> seed, ulong firstBlock, Span<byte> destination)
    {
        using var aes = CreateAes(seed);
        KeyStream(aes, firstBlock, destination);
    }

    private static void Apply(ReadOnlySpan<byte> seed, Span<uint> vector, bool subtract)
    {
        using var aes = CreateAes(seed);
        var buffer = ArrayPool<byte>.Shared.Rent(WordsPerPiece * 4);
        try
        {
            ulong block = 0;
            for (int offset = 0; offset < vector.Length; offset += WordsPerPiece)
            {
                int words = Math.Min(WordsPerPiece, vector.Length - offset);
                int bytes = ((words * 4) + BlockBytes - 1) / BlockBytes * BlockBytes;
                var stream = buffer.AsSpan(0, bytes);
                KeyStream(aes, block, stream);
                block += (ulong)(bytes / BlockBytes);
                var mask = MemoryMarshal.Cast<byte, uint>(stream)[..words];
                if (!BitConverter.IsLittleEndian)
                    BinaryPrimitives.ReverseEndianness(mask, mask);
                var target = vector.Slice(offset, words);
                if (subtract)
                    TensorPrimitives.Subtract(target, mask, target);
                else
                    TensorPrimitives.Add(target, mask, target);
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private static Aes CreateAes(ReadOnlySpan<byte> seed)
    {
        if (seed.Length != SeedBytes)
            throw new ArgumentException($"A mask seed is {SeedBytes} bytes; got {seed.Length}.", nameof(seed));
        var aes = Aes.Create();
        aes.SetKey(seed);
        return aes;
    }

    private static void KeyStream(Aes aes, ulong firstBlock, Span<byte> destination)
    {
        if (destination.Length % BlockBytes != 0)
            throw new ArgumentException($"Key stream is produced in {BlockBytes}-byte blocks.", nameof(destination));
        destination.Clear();
        for (int i = 0; i < destination.Length / BlockBytes; i++)
            BinaryPrimitives.WriteUInt64LittleEndian(destination[(i * BlockBytes)..], firstBlock + (ulong)i);
        aes.EncryptEcb(destination, destination, PaddingMode.None);
    }
}
