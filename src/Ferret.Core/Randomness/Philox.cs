using System.Runtime.CompilerServices;

namespace Ferret.Core.Randomness;

/// <summary>
/// Philox4x32-10 (Salmon et al., SC 2011): a counter-based generator, so element <c>i</c> of any basis is a
/// pure function of (seed, block, i) and every device regenerates the same bits in any order.
/// </summary>
public static class Philox
{
    internal const uint M0 = 0xD2511F53;
    internal const uint M1 = 0xCD9E8D57;
    internal const uint W0 = 0x9E3779B9;
    internal const uint W1 = 0xBB67AE85;

    /// <summary>One Philox4x32-10 block: four output words for a counter and a key.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static (uint X0, uint X1, uint X2, uint X3) Generate(uint c0, uint c1, uint c2, uint c3, uint k0, uint k1)
    {
        for (int round = 0; round < 10; round++)
        {
            if (round > 0)
            {
                k0 += W0;
                k1 += W1;
            }
            ulong p0 = (ulong)M0 * c0;
            ulong p1 = (ulong)M1 * c2;
            uint n0 = (uint)(p1 >> 32) ^ c1 ^ k0;
            uint n1 = (uint)p1;
            uint n2 = (uint)(p0 >> 32) ^ c3 ^ k1;
            uint n3 = (uint)p0;
            c0 = n0;
            c1 = n1;
            c2 = n2;
            c3 = n3;
        }
        return (c0, c1, c2, c3);
    }

    /// <summary>Output word number <c>index &amp; 3</c> of the block holding element <paramref name="index"/> of a stream.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint Word(ulong seed, uint block, ulong index)
    {
        ulong q = index >> 2;
        var (x0, x1, x2, x3) = Generate((uint)q, (uint)(q >> 32), block, 0, (uint)seed, (uint)(seed >> 32));
        return (index & 3) switch
        {
            0 => x0,
            1 => x1,
            2 => x2,
            _ => x3,
        };
    }
}
