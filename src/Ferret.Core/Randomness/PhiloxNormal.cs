using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Ferret.Core.Randomness;

/// <summary>
/// A counter-based standard normal stream: element <c>i</c> of (key, stream) is a pure function of the three, so
/// any slice can be generated on any thread, in any order, by any kernel path, with the same bits. Used to
/// initialise large models fast (billions of weights) where <see cref="Random"/> would be sequential and slow.
/// <para>
/// Elements come in groups of 64: group <c>g</c> takes Philox4x32-10 blocks with counters <c>16g + l</c>
/// (<c>l</c> = 0..15), the stream number in the third counter word and the key as the Philox key. Box-Muller on
/// words (x0, x1) gives elements <c>64g + l</c> (cosine) and <c>64g + 16 + l</c> (sine); on (x2, x3), elements
/// <c>64g + 32 + l</c> and <c>64g + 48 + l</c>. The radius uses <c>u = (2(x &gt;&gt; 9) + 1) 2^-24</c> in (0, 1),
/// the angle <c>2 pi v</c> with <c>v = (x &gt;&gt; 8) 2^-24</c>. Logarithm, sine and cosine are our own polynomials
/// in float32 with fused multiply-adds (no libm), so every CPU and path gives identical bits.
/// </para>
/// </summary>
public static class PhiloxNormal
{
    /// <summary>Elements per group: 16 Philox blocks of four words.</summary>
    public const int GroupLength = 64;

    /// <summary>Slices shorter than this stay on one thread.</summary>
    private const int ParallelGrain = 1 << 16;

    private const float TwoToMinus22 = 2.38418579101562500E-7f;
    private const float TwoToMinus24 = 5.9604644775390625E-8f;
    private const float Sqrt2 = 1.41421356f;
    private const float Ln2 = 0.693147181f;
    private const float HalfPi = 1.57079633f;

    // ln((1 + s) / (1 - s)) = 2 (s + s^3/3 + s^5/5 + ...), |s| <= 0.172 on [sqrt(1/2), sqrt(2)).
    private const float L1 = 1f / 3f, L2 = 1f / 5f, L3 = 1f / 7f, L4 = 1f / 9f, L5 = 1f / 11f;

    // Taylor series of sine and cosine on [0, pi/2): truncation below 1e-8.
    private const float S1 = -1f / 6f, S2 = 1f / 120f, S3 = -1f / 5040f, S4 = 1f / 362880f, S5 = -1f / 39916800f, S6 = 1f / 6227020800f;
    private const float C1 = -1f / 2f, C2 = 1f / 24f, C3 = -1f / 720f, C4 = 1f / 40320f, C5 = -1f / 3628800f, C6 = 1f / 479001600f;

    /// <summary>Element <paramref name="index"/> of the stream, times <paramref name="scale"/>: the scalar reference.</summary>
    public static float Element(ulong key, uint stream, ulong index, float scale = 1f)
    {
        ulong g = index / GroupLength;
        int r = (int)(index % GroupLength);
        ulong q = (16 * g) + (ulong)(r & 15);
        var (x0, x1, x2, x3) = Philox.Generate((uint)q, (uint)(q >> 32), stream, 0, (uint)key, (uint)(key >> 32));
        var (cos, sin) = r < 32 ? BoxMuller(x0, x1) : BoxMuller(x2, x3);
        return ((r >> 4) & 1) == 0 ? cos * scale : sin * scale;
    }

    /// <summary>
    /// Writes elements <c>start .. start + destination.Length</c> of the stream, each times
    /// <paramref name="scale"/>, on the calling thread.
    /// </summary>
    public static void Fill(ulong key, uint stream, float scale, Span<float> destination, ulong start, KernelPath path = KernelPath.Auto)
    {
        path = BasisKernels.Resolve(path);
        Span<float> group = stackalloc float[GroupLength];
        int head = (int)Math.Min((ulong)destination.Length, (GroupLength - (start % GroupLength)) % GroupLength);
        if (head > 0)
        {
            Group(key, stream, scale, start / GroupLength, group, path);
            group.Slice((int)(start % GroupLength), head).CopyTo(destination);
        }
        int i = head;
        for (; i + GroupLength <= destination.Length; i += GroupLength)
            Group(key, stream, scale, (start + (ulong)i) / GroupLength, destination.Slice(i, GroupLength), path);
        if (i < destination.Length)
        {
            Group(key, stream, scale, (start + (ulong)i) / GroupLength, group, path);
            group[..(destination.Length - i)].CopyTo(destination[i..]);
        }
    }

    /// <summary>
    /// <see cref="Fill"/> split across threads on group boundaries; the bits do not depend on the thread count.
    /// </summary>
    public static void FillParallel(ulong key, uint stream, float scale, Memory<float> destination, ulong start, int maxDegreeOfParallelism = -1, KernelPath path = KernelPath.Auto)
    {
        int threads = maxDegreeOfParallelism > 0 ? maxDegreeOfParallelism : Environment.ProcessorCount;
        if (threads == 1 || destination.Length < 2 * ParallelGrain)
        {
            Fill(key, stream, scale, destination.Span, start, path);
            return;
        }
        // Pieces begin on absolute group boundaries so each thread writes whole groups.
        int pieces = Math.Min(threads * 4, destination.Length / ParallelGrain);
        int per = (destination.Length / pieces) + GroupLength;
        per -= per % GroupLength;
        int first = (int)Math.Min((ulong)destination.Length, (GroupLength - (start % GroupLength)) % GroupLength);
        int count = 1 + ((destination.Length - first + per - 1) / per);
        Parallel.For(0, count, new ParallelOptions { MaxDegreeOfParallelism = threads }, p =>
        {
            int from = p == 0 ? 0 : Math.Min(destination.Length, first + ((p - 1) * per));
            int to = Math.Min(destination.Length, first + (p * per));
            if (to > from)
                Fill(key, stream, scale, destination.Span[from..to], start + (ulong)from, path);
        });
    }

    private static void Group(ulong key, uint stream, float scale, ulong g, Span<float> destination, KernelPath path)
    {
        switch (path)
        {
            case KernelPath.Vector512:
                Group512(key, stream, scale, g, destination);
                break;
            case KernelPath.Vector256:
                Group256(key, stream, scale, g, destination, 0);
                Group256(key, stream, scale, g, destination, 8);
                break;
            default:
                GroupScalar(key, stream, scale, g, destination);
                break;
        }
    }

    private static void GroupScalar(ulong key, uint stream, float scale, ulong g, Span<float> destination)
    {
        for (int l = 0; l < 16; l++)
        {
            ulong q = (16 * g) + (ulong)l;
            var (x0, x1, x2, x3) = Philox.Generate((uint)q, (uint)(q >> 32), stream, 0, (uint)key, (uint)(key >> 32));
            var (c0, s0) = BoxMuller(x0, x1);
            var (c2, s2) = BoxMuller(x2, x3);
            destination[l] = c0 * scale;
            destination[16 + l] = s0 * scale;
            destination[32 + l] = c2 * scale;
            destination[48 + l] = s2 * scale;
        }
    }

    /// <summary>Box-Muller on two words: radius from <paramref name="radiusWord"/>, angle from <paramref name="angleWord"/>.</summary>
    private static (float Cos, float Sin) BoxMuller(uint radiusWord, uint angleWord)
    {
        float u = (float)(int)(((radiusWord >> 9) << 1) | 1) * TwoToMinus24;
        float r = MathF.Sqrt(-2f * Ln(u));
        float a = (float)(int)((angleWord >> 8) & 0x3FFFFF) * TwoToMinus22 * HalfPi;
        float a2 = a * a;
        float ps = MathF.FusedMultiplyAdd(MathF.FusedMultiplyAdd(MathF.FusedMultiplyAdd(MathF.FusedMultiplyAdd(MathF.FusedMultiplyAdd(S6, a2, S5), a2, S4), a2, S3), a2, S2), a2, S1);
        float sin = MathF.FusedMultiplyAdd(a, a2 * ps, a);
        float pc = MathF.FusedMultiplyAdd(MathF.FusedMultiplyAdd(MathF.FusedMultiplyAdd(MathF.FusedMultiplyAdd(MathF.FusedMultiplyAdd(C6, a2, C5), a2, C4), a2, C3), a2, C2), a2, C1);
        float cos = MathF.FusedMultiplyAdd(pc, a2, 1f);
        uint quadrant = angleWord >> 30;
        if ((quadrant & 1) != 0)
            (sin, cos) = (cos, sin);
        if ((quadrant & 2) != 0)
            sin = -sin;
        if (((quadrant ^ (quadrant >> 1)) & 1) != 0)
            cos = -cos;
        return (r * cos, r * sin);
    }

    /// <summary>Natural logarithm of a normal positive float, to float precision.</summary>
    private static float Ln(float u)
    {
        uint bits = BitConverter.SingleToUInt32Bits(u);
        int e = (int)(bits >> 23) - 127;
        float m = BitConverter.UInt32BitsToSingle((bits & 0x7FFFFF) | 0x3F800000);
        if (m > Sqrt2)
        {
            m *= 0.5f;
            e++;
        }
        float s = (m - 1f) / (m + 1f);
        float s2 = s * s;
        float p = MathF.FusedMultiplyAdd(MathF.FusedMultiplyAdd(MathF.FusedMultiplyAdd(MathF.FusedMultiplyAdd(MathF.FusedMultiplyAdd(L5, s2, L4), s2, L3), s2, L2), s2, L1), s2, 1f);
        return MathF.FusedMultiplyAdd(e, Ln2, 2f * s * p);
    }

    // ---- 512-bit path: one group is 16 lanes x 4 words ----------------------------------------------

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Group512(ulong key, uint stream, float scale, ulong g, Span<float> destination)
    {
        BasisKernels.Philox512(16 * g, stream, key, out var x0, out var x1, out var x2, out var x3);
        var s = Vector512.Create(scale);
        BoxMuller512(x0, x1, out var c0, out var s0);
        BoxMuller512(x2, x3, out var c2, out var s2);
        (c0 * s).CopyTo(destination);
        (s0 * s).CopyTo(destination[16..]);
        (c2 * s).CopyTo(destination[32..]);
        (s2 * s).CopyTo(destination[48..]);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void BoxMuller512(Vector512<uint> radiusWord, Vector512<uint> angleWord, out Vector512<float> cos, out Vector512<float> sin)
    {
        var u = Vector512.ConvertToSingle((((radiusWord >> 9) << 1) | Vector512<uint>.One).AsInt32()) * Vector512.Create(TwoToMinus24);
        var r = Vector512.Sqrt(Vector512.Create(-2f) * Ln512(u));
        var a = Vector512.ConvertToSingle(((angleWord >> 8) & Vector512.Create(0x3FFFFFu)).AsInt32()) * Vector512.Create(TwoToMinus22) * Vector512.Create(HalfPi);
        var a2 = a * a;
        var ps = Fma(Fma(Fma(Fma(Fma(Vector512.Create(S6), a2, S5), a2, S4), a2, S3), a2, S2), a2, S1);
        var sn = Vector512.FusedMultiplyAdd(a, a2 * ps, a);
        var pc = Fma(Fma(Fma(Fma(Fma(Vector512.Create(C6), a2, C5), a2, C4), a2, C3), a2, C2), a2, C1);
        var cs = Fma(pc, a2, 1f);
        var quadrant = angleWord >> 30;
        var swap = Vector512.Equals(quadrant & Vector512<uint>.One, Vector512<uint>.One).AsSingle();
        var sinQ = Vector512.ConditionalSelect(swap, cs, sn);
        var cosQ = Vector512.ConditionalSelect(swap, sn, cs);
        var sinSign = ((quadrant >> 1) << 31).AsSingle();
        var cosSign = (((quadrant ^ (quadrant >> 1)) & Vector512<uint>.One) << 31).AsSingle();
        cos = r * (cosQ ^ cosSign);
        sin = r * (sinQ ^ sinSign);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Ln512(Vector512<float> u)
    {
        var bits = u.AsUInt32();
        var e = (bits >> 23).AsInt32() - Vector512.Create(127);
        var m = ((bits & Vector512.Create(0x7FFFFFu)) | Vector512.Create(0x3F800000u)).AsSingle();
        var big = Vector512.GreaterThan(m, Vector512.Create(Sqrt2));
        m = Vector512.ConditionalSelect(big, m * Vector512.Create(0.5f), m);
        e -= big.AsInt32();
        var s = (m - Vector512<float>.One) / (m + Vector512<float>.One);
        var s2 = s * s;
        var p = Fma(Fma(Fma(Fma(Fma(Vector512.Create(L5), s2, L4), s2, L3), s2, L2), s2, L1), s2, 1f);
        return Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(e), Vector512.Create(Ln2), Vector512.Create(2f) * s * p);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Fma(Vector512<float> a, Vector512<float> b, float c) => Vector512.FusedMultiplyAdd(a, b, Vector512.Create(c));

    // ---- 256-bit path: a group is two halves of 8 lanes -------------------------------------------

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Group256(ulong key, uint stream, float scale, ulong g, Span<float> destination, int half)
    {
        BasisKernels.Philox256((16 * g) + (ulong)half, stream, key, out var x0, out var x1, out var x2, out var x3);
        var s = Vector256.Create(scale);
        BoxMuller256(x0, x1, out var c0, out var s0);
        BoxMuller256(x2, x3, out var c2, out var s2);
        (c0 * s).CopyTo(destination[half..]);
        (s0 * s).CopyTo(destination[(16 + half)..]);
        (c2 * s).CopyTo(destination[(32 + half)..]);
        (s2 * s).CopyTo(destination[(48 + half)..]);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void BoxMuller256(Vector256<uint> radiusWord, Vector256<uint> angleWord, out Vector256<float> cos, out Vector256<float> sin)
    {
        var u = Vector256.ConvertToSingle((((radiusWord >> 9) << 1) | Vector256<uint>.One).AsInt32()) * Vector256.Create(TwoToMinus24);
        var r = Vector256.Sqrt(Vector256.Create(-2f) * Ln256(u));
        var a = Vector256.ConvertToSingle(((angleWord >> 8) & Vector256.Create(0x3FFFFFu)).AsInt32()) * Vector256.Create(TwoToMinus22) * Vector256.Create(HalfPi);
        var a2 = a * a;
        var ps = Fma(Fma(Fma(Fma(Fma(Vector256.Create(S6), a2, S5), a2, S4), a2, S3), a2, S2), a2, S1);
        var sn = Vector256.FusedMultiplyAdd(a, a2 * ps, a);
        var pc = Fma(Fma(Fma(Fma(Fma(Vector256.Create(C6), a2, C5), a2, C4), a2, C3), a2, C2), a2, C1);
        var cs = Fma(pc, a2, 1f);
        var quadrant = angleWord >> 30;
        var swap = Vector256.Equals(quadrant & Vector256<uint>.One, Vector256<uint>.One).AsSingle();
        var sinQ = Vector256.ConditionalSelect(swap, cs, sn);
        var cosQ = Vector256.ConditionalSelect(swap, sn, cs);
        var sinSign = ((quadrant >> 1) << 31).AsSingle();
        var cosSign = (((quadrant ^ (quadrant >> 1)) & Vector256<uint>.One) << 31).AsSingle();
        cos = r * (cosQ ^ cosSign);
        sin = r * (sinQ ^ sinSign);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Ln256(Vector256<float> u)
    {
        var bits = u.AsUInt32();
        var e = (bits >> 23).AsInt32() - Vector256.Create(127);
        var m = ((bits & Vector256.Create(0x7FFFFFu)) | Vector256.Create(0x3F800000u)).AsSingle();
        var big = Vector256.GreaterThan(m, Vector256.Create(Sqrt2));
        m = Vector256.ConditionalSelect(big, m * Vector256.Create(0.5f), m);
        e -= big.AsInt32();
        var s = (m - Vector256<float>.One) / (m + Vector256<float>.One);
        var s2 = s * s;
        var p = Fma(Fma(Fma(Fma(Fma(Vector256.Create(L5), s2, L4), s2, L3), s2, L2), s2, L1), s2, 1f);
        return Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(e), Vector256.Create(Ln2), Vector256.Create(2f) * s * p);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Fma(Vector256<float> a, Vector256<float> b, float c) => Vector256.FusedMultiplyAdd(a, b, Vector256.Create(c));
}
