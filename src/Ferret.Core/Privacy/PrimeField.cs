using System.Runtime.CompilerServices;

namespace Ferret.Core.Privacy;

/// <summary>
/// Arithmetic in the prime field of the Mersenne prime <c>p = 2^61 - 1</c>, the field Ferret.NET's Shamir
/// secret sharing works in. Elements are <see cref="ulong"/> values in <c>[0, p)</c>; products go through
/// <see cref="UInt128"/> and reduce with the Mersenne identity <c>2^61 = 1 (mod p)</c>.
/// </summary>
public static class PrimeField
{
    /// <summary>The modulus <c>2^61 - 1</c>.</summary>
    public const ulong P = (1UL << 61) - 1;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Add(ulong a, ulong b)
    {
        ulong s = a + b; // < 2^62, no overflow
        return s >= P ? s - P : s;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Subtract(ulong a, ulong b) => a >= b ? a - b : a + P - b;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Multiply(ulong a, ulong b) => Reduce((UInt128)a * b);

    /// <summary>Reduces any value below <c>2^122</c> (a product of two elements) modulo p.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Reduce(UInt128 x)
    {
        ulong r = ((ulong)x & P) + (ulong)(x >> 61); // < 2^62
        r = (r & P) + (r >> 61);
        return r >= P ? r - P : r;
    }

    public static ulong Power(ulong a, ulong exponent)
    {
        ulong result = 1, b = a % P;
        while (exponent != 0)
        {
            if ((exponent & 1) != 0)
                result = Multiply(result, b);
            b = Multiply(b, b);
            exponent >>= 1;
        }
        return result;
    }

    /// <summary>The multiplicative inverse (Fermat: <c>a^(p-2)</c>); zero has none.</summary>
    public static ulong Inverse(ulong a)
    {
        if (a % P == 0)
            throw new DivideByZeroException("Zero has no inverse in the field.");
        return Power(a, P - 2);
    }

    /// <summary>A uniform element from 8 random bytes: 61 bits kept, the single value p rejected by the caller's retry.</summary>
    internal static bool TryFromRandom(ulong randomBits, out ulong element)
    {
        element = randomBits & P;
        return element != P;
    }
}
