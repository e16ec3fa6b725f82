using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Ferret.Core.Randomness;

/// <summary>Which instruction set the basis kernels use; <see cref="Auto"/> picks the widest the CPU has.</summary>
public enum KernelPath
{
    Auto,
    Scalar,
    Vector256,
    Vector512,
}

/// <summary>
/// Fused shared-randomness kernels: basis values are generated in registers and consumed at once (a dot
/// product for projection, a subtraction for reconstruction), never written to memory. Philox counters run
/// in SIMD lanes (8 or 16 at a time), each lane yielding four consecutive elements; the data is transposed
/// once per tile into the matching lane order, so the per-seed inner loop is pure generate-and-FMA.
/// Every path gives the bits of <see cref="SharedRandomness"/>'s scalar reference.
/// </summary>
public static class BasisKernels
{
    /// <summary>Elements per tile: a multiple of 64 whose transposed copy stays in L1/L2.</summary>
    public const int TileLength = 4096;

    private const int TwoTo24 = 1 << 24;

    /// <summary>The widest path this CPU supports.</summary>
    public static KernelPath Best { get; } =
        Avx512F.IsSupported && Avx512BW.IsSupported ? KernelPath.Vector512
        : Avx2.IsSupported && Fma.IsSupported ? KernelPath.Vector256
        : KernelPath.Scalar;

    internal static KernelPath Resolve(KernelPath path) => path switch
    {
        KernelPath.Auto => Best,
        KernelPath.Vector512 when !(Avx512F.IsSupported && Avx512BW.IsSupported) => throw new PlatformNotSupportedException("This CPU has no AVX-512."),
        KernelPath.Vector256 when !(Avx2.IsSupported && Fma.IsSupported) => throw new PlatformNotSupportedException("This CPU has no AVX2 with FMA."),
        _ => path,
    };

    private static int Lanes(KernelPath path) => path == KernelPath.Vector512 ? 16 : 8;

    // ---- public kernels -----------------------------------------------------------------------

    /// <summary>
    /// Writes elements <c>start .. start + destination.Length</c> of the basis of (seed, block) into
    /// <paramref name="destination"/>. Materialises the basis: for tests, tools and small blocks.
    /// </summary>
    public static void Fill(ulong seed, uint block, float scale, BasisDistribution distribution, Span<float> destination, ulong start, KernelPath path = KernelPath.Auto)
    {
        path = Resolve(path);
        destination.Clear();
        // Fill = 0 - (-1 * v): reuse the reconstruction kernel, which is exact for these values.
        ReadOnlySpan<ulong> seeds = [seed];
        ReadOnlySpan<float> coefficients = [-1f];
        Apply(seeds, coefficients, block, scale, distribution, destination, start, path);
    }

    /// <summary>
    /// <c>dots[s] += sum_i data[i] * v_{seeds[s]}[start + i]</c> for every seed, where <paramref name="data"/>
    /// holds block elements <c>start .. start + data.Length</c>. Single-threaded; callers split work by tiles.
    /// </summary>
    public static void Dot(ReadOnlySpan<ulong> seeds, uint block, float scale, BasisDistribution distribution, ReadOnlySpan<float> data, ulong start, Span<double> dots, KernelPath path = KernelPath.Auto)
    {
        if (dots.Length < seeds.Length)
            throw new ArgumentException($"{seeds.Length} seeds need {seeds.Length} dot slots, got {dots.Length}.", nameof(dots));
        path = Resolve(path);
        int head = path == KernelPath.Scalar ? data.Length : HeadLength(start, data.Length);
        for (int s = 0; s < seeds.Length; s++)
            dots[s] += ScalarDot(seeds[s], block, scale, distribution, data[..head], start);
        data = data[head..];
        start += (ulong)head;
        if (data.IsEmpty)
            return;

        int chunk = 4 * Lanes(path);
        float[] tile = TileBuffer;
        while (data.Length >= chunk)
        {
            int len = Math.Min(TileLength, data.Length - (data.Length % chunk));
            Transpose(data[..len], tile, Lanes(path));
            for (int s = 0; s < seeds.Length; s++)
            {
                dots[s] += path == KernelPath.Vector512
                    ? Dot512(seeds[s], block, scale, distribution, tile.AsSpan(0, len), start)
                    : Dot256(seeds[s], block, scale, distribution, tile.AsSpan(0, len), start);
            }
            data = data[len..];
            start += (ulong)len;
        }
        for (int s = 0; s < seeds.Length; s++)
            dots[s] += ScalarDot(seeds[s], block, scale, distribution, data, start);
    }

    /// <summary>
    /// Reconstruction, bit-exact per the contract: for each seed in the given (ascending) order and each
    /// element, <c>t = float32(c * v_i)</c>, <c>w_i = float32(w_i - t)</c>. <paramref name="weights"/> holds
    /// block elements <c>start .. start + weights.Length</c>.
    /// </summary>
    public static void Apply(ReadOnlySpan<ulong> seeds, ReadOnlySpan<float> coefficients, uint block, float scale, BasisDistribution distribution, Span<float> weights, ulong start, KernelPath path = KernelPath.Auto)
    {
        if (coefficients.Length != seeds.Length)
            throw new ArgumentException($"{seeds.Length} seeds but {coefficients.Length} coefficients.", nameof(coefficients));
        path = Resolve(path);
        int head = path == KernelPath.Scalar ? weights.Length : HeadLength(start, weights.Length);
        ScalarApply(seeds, coefficients, block, scale, distribution, weights[..head], start);
        weights = weights[head..];
        start += (ulong)head;
        if (weights.IsEmpty)
            return;

        int lanes = Lanes(path);
        int chunk = 4 * lanes;
        float[] tile = TileBuffer;
        while (weights.Length >= chunk)
        {
            int len = Math.Min(TileLength, weights.Length - (weights.Length % chunk));
            var w = weights[..len];
            Transpose(w, tile, lanes);
            for (int s = 0; s < seeds.Length; s++)
            {
                if (path == KernelPath.Vector512)
                    Apply512(seeds[s], coefficients[s], block, scale, distribution, tile.AsSpan(0, len), start);
                else
                    Apply256(seeds[s], coefficients[s], block, scale, distribution, tile.AsSpan(0, len), start);
            }
            Untranspose(tile.AsSpan(0, len), w, lanes);
            weights = weights[len..];
            start += (ulong)len;
        }
        ScalarApply(seeds, coefficients, block, scale, distribution, weights, start);
    }

    // ---- scalar reference paths ---------------------------------------------------------------

    private static double ScalarDot(ulong seed, uint block, float scale, BasisDistribution distribution, ReadOnlySpan<float> data, ulong start)
    {
        double sum = 0;
        for (int i = 0; i < data.Length; i++)
            sum += data[i] * Element(seed, block, scale, distribution, start + (ulong)i);
        return sum;
    }

    private static void ScalarApply(ReadOnlySpan<ulong> seeds, ReadOnlySpan<float> coefficients, uint block, float scale, BasisDistribution distribution, Span<float> weights, ulong start)
    {
        for (int s = 0; s < seeds.Length; s++)
        {
            float c = coefficients[s];
            for (int i = 0; i < weights.Length; i++)
            {
                float t = c * Element(seeds[s], block, scale, distribution, start + (ulong)i);
                weights[i] -= t;
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Element(ulong seed, uint block, float scale, BasisDistribution distribution, ulong index)
    {
        uint word = Philox.Word(seed, block, index);
        return distribution == BasisDistribution.Uniform
            ? SharedRandomness.Uniform(word) * scale
            : ((word & 0x80000000u) == 0 ? scale : -scale);
    }

    /// <summary>Elements handled by the scalar path before the first index that is a multiple of 4.</summary>
    private static int HeadLength(ulong start, int length) => (int)Math.Min((ulong)length, (4 - (start & 3)) & 3);

    // ---- lane layout ----------------------------------------------------------------------------

    [ThreadStatic]
    private static float[]? t_tile;

    private static float[] TileBuffer => t_tile ??= GC.AllocateUninitializedArray<float>(TileLength, pinned: true);

    /// <summary>Chunk c of 4L elements: <c>dst[c*4L + w*L + j] = src[c*4L + 4j + w]</c>, lane j holds counter j.</summary>
    private static void Transpose(ReadOnlySpan<float> src, Span<float> dst, int lanes)
    {
        int chunk = 4 * lanes;
        for (int c = 0; c + chunk <= src.Length; c += chunk)
        {
            var s = src.Slice(c, chunk);
            var d = dst.Slice(c, chunk);
            for (int j = 0; j < lanes; j++)
            {
                d[j] = s[4 * j];
                d[lanes + j] = s[(4 * j) + 1];
                d[(2 * lanes) + j] = s[(4 * j) + 2];
                d[(3 * lanes) + j] = s[(4 * j) + 3];
            }
        }
    }

    private static void Untranspose(ReadOnlySpan<float> src, Span<float> dst, int lanes)
    {
        int chunk = 4 * lanes;
        for (int c = 0; c + chunk <= dst.Length; c += chunk)
        {
            var s = src.Slice(c, chunk);
            var d = dst.Slice(c, chunk);
            for (int j = 0; j < lanes; j++)
            {
                d[4 * j] = s[j];
                d[(4 * j) + 1] = s[lanes + j];
                d[(4 * j) + 2] = s[(2 * lanes) + j];
                d[(4 * j) + 3] = s[(3 * lanes) + j];
            }
        }
    }

    // ---- 256-bit path (AVX2): 8 counters per vector ---------------------------------------------

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void MulHiLo(Vector256<uint> a, Vector256<uint> m, out Vector256<uint> hi, out Vector256<uint> lo)
    {
        var even = Avx2.Multiply(a, m);
        var odd = Avx2.Multiply(Avx2.ShiftRightLogical(a.AsUInt64(), 32).AsUInt32(), m);
        var oddLanes = Vector256.Create(0u, ~0u, 0u, ~0u, 0u, ~0u, 0u, ~0u);
        lo = Vector256.ConditionalSelect(oddLanes, Avx2.ShiftLeftLogical(odd, 32).AsUInt32(), even.AsUInt32());
        hi = Vector256.ConditionalSelect(oddLanes, odd.AsUInt32(), Avx2.ShiftRightLogical(even, 32).AsUInt32());
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void Philox256(ulong q, uint block, ulong seed, out Vector256<uint> x0, out Vector256<uint> x1, out Vector256<uint> x2, out Vector256<uint> x3)
    {
        var c0 = Vector256.Create((uint)q) + Vector256.Create(0u, 1, 2, 3, 4, 5, 6, 7);
        var c1 = Vector256.Create((uint)(q >> 32));
        var c2 = Vector256.Create(block);
        var c3 = Vector256<uint>.Zero;
        uint k0 = (uint)seed, k1 = (uint)(seed >> 32);
        var m0 = Vector256.Create(Philox.M0);
        var m1 = Vector256.Create(Philox.M1);
        for (int round = 0; round < 10; round++)
        {
            MulHiLo(c0, m0, out var hi0, out var lo0);
            MulHiLo(c2, m1, out var hi1, out var lo1);
            c0 = hi1 ^ c1 ^ Vector256.Create(k0);
            c1 = lo1;
            c2 = hi0 ^ c3 ^ Vector256.Create(k1);
            c3 = lo0;
            k0 += Philox.W0;
            k1 += Philox.W1;
        }
        x0 = c0;
        x1 = c1;
        x2 = c2;
        x3 = c3;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Values256(Vector256<uint> word, BasisDistribution distribution, Vector256<float> scaledUnit, Vector256<uint> scaleBits)
    {
        if (distribution == BasisDistribution.Uniform)
        {
            var m = ((word >> 8) << 1).AsInt32() + Vector256.Create(1 - TwoTo24);
            return Vector256.ConvertToSingle(m) * scaledUnit;
        }
        return ((word & Vector256.Create(0x80000000u)) | scaleBits).AsSingle();
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static double Dot256(ulong seed, uint block, float scale, BasisDistribution distribution, ReadOnlySpan<float> tile, ulong start)
    {
        var unit = Vector256.Create(scale * SharedRandomness.TwoToMinus24);
        var bits = Vector256.Create(BitConverter.SingleToUInt32Bits(scale));
        var acc0 = Vector256<float>.Zero;
        var acc1 = Vector256<float>.Zero;
        var acc2 = Vector256<float>.Zero;
        var acc3 = Vector256<float>.Zero;
        double total = 0;
        ulong q = start >> 2;
        for (int c = 0; c < tile.Length; c += 32, q += 8)
        {
            if ((uint)q > uint.MaxValue - 8)
            {
                total += WrapDot(seed, block, scale, distribution, tile.Slice(c, 32), q, 8);
                continue;
            }
            Philox256(q, block, seed, out var x0, out var x1, out var x2, out var x3);
            acc0 = Fma.MultiplyAdd(Vector256.Create(tile.Slice(c, 8)), Values256(x0, distribution, unit, bits), acc0);
            acc1 = Fma.MultiplyAdd(Vector256.Create(tile.Slice(c + 8, 8)), Values256(x1, distribution, unit, bits), acc1);
            acc2 = Fma.MultiplyAdd(Vector256.Create(tile.Slice(c + 16, 8)), Values256(x2, distribution, unit, bits), acc2);
            acc3 = Fma.MultiplyAdd(Vector256.Create(tile.Slice(c + 24, 8)), Values256(x3, distribution, unit, bits), acc3);
        }
        return total + Vector256.Sum((acc0 + acc1) + (acc2 + acc3));
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Apply256(ulong seed, float coefficient, uint block, float scale, BasisDistribution distribution, Span<float> tile, ulong start)
    {
        var unit = Vector256.Create(scale * SharedRandomness.TwoToMinus24);
        var bits = Vector256.Create(BitConverter.SingleToUInt32Bits(scale));
        var cv = Vector256.Create(coefficient);
        ulong q = start >> 2;
        for (int c = 0; c < tile.Length; c += 32, q += 8)
        {
            if ((uint)q > uint.MaxValue - 8)
            {
                WrapApply(seed, coefficient, block, scale, distribution, tile.Slice(c, 32), q, 8);
                continue;
            }
            Philox256(q, block, seed, out var x0, out var x1, out var x2, out var x3);
            // Two roundings, never an FMA: t = c * v, then w - t.
            Sub256(tile.Slice(c, 8), cv * Values256(x0, distribution, unit, bits));
            Sub256(tile.Slice(c + 8, 8), cv * Values256(x1, distribution, unit, bits));
            Sub256(tile.Slice(c + 16, 8), cv * Values256(x2, distribution, unit, bits));
            Sub256(tile.Slice(c + 24, 8), cv * Values256(x3, distribution, unit, bits));
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Sub256(Span<float> w, Vector256<float> t) => (Vector256.Create((ReadOnlySpan<float>)w) - t).CopyTo(w);

    // ---- 512-bit path (AVX-512): 16 counters per vector -----------------------------------------

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void MulHiLo(Vector512<uint> a, Vector512<uint> m, out Vector512<uint> hi, out Vector512<uint> lo)
    {
        var even = Avx512F.Multiply(a, m);
        var odd = Avx512F.Multiply(Avx512F.ShiftRightLogical(a.AsUInt64(), 32).AsUInt32(), m);
        var oddLanes = Vector512.Create(0xFFFFFFFF_00000000UL).AsUInt32();
        lo = Vector512.ConditionalSelect(oddLanes, Avx512F.ShiftLeftLogical(odd, 32).AsUInt32(), even.AsUInt32());
        hi = Vector512.ConditionalSelect(oddLanes, odd.AsUInt32(), Avx512F.ShiftRightLogical(even, 32).AsUInt32());
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void Philox512(ulong q, uint block, ulong seed, out Vector512<uint> x0, out Vector512<uint> x1, out Vector512<uint> x2, out Vector512<uint> x3)
    {
        var c0 = Vector512.Create((uint)q) + Vector512.Create(0u, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
        var c1 = Vector512.Create((uint)(q >> 32));
        var c2 = Vector512.Create(block);
        var c3 = Vector512<uint>.Zero;
        uint k0 = (uint)seed, k1 = (uint)(seed >> 32);
        var m0 = Vector512.Create(Philox.M0);
        var m1 = Vector512.Create(Philox.M1);
        for (int round = 0; round < 10; round++)
        {
            MulHiLo(c0, m0, out var hi0, out var lo0);
            MulHiLo(c2, m1, out var hi1, out var lo1);
            c0 = hi1 ^ c1 ^ Vector512.Create(k0);
            c1 = lo1;
            c2 = hi0 ^ c3 ^ Vector512.Create(k1);
            c3 = lo0;
            k0 += Philox.W0;
            k1 += Philox.W1;
        }
        x0 = c0;
        x1 = c1;
        x2 = c2;
        x3 = c3;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Values512(Vector512<uint> word, BasisDistribution distribution, Vector512<float> scaledUnit, Vector512<uint> scaleBits)
    {
        if (distribution == BasisDistribution.Uniform)
        {
            var m = ((word >> 8) << 1).AsInt32() + Vector512.Create(1 - TwoTo24);
            return Vector512.ConvertToSingle(m) * scaledUnit;
        }
        return ((word & Vector512.Create(0x80000000u)) | scaleBits).AsSingle();
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static double Dot512(ulong seed, uint block, float scale, BasisDistribution distribution, ReadOnlySpan<float> tile, ulong start)
    {
        var unit = Vector512.Create(scale * SharedRandomness.TwoToMinus24);
        var bits = Vector512.Create(BitConverter.SingleToUInt32Bits(scale));
        var acc0 = Vector512<float>.Zero;
        var acc1 = Vector512<float>.Zero;
        var acc2 = Vector512<float>.Zero;
        var acc3 = Vector512<float>.Zero;
        double total = 0;
        ulong q = start >> 2;
        for (int c = 0; c < tile.Length; c += 64, q += 16)
        {
            if ((uint)q > uint.MaxValue - 16)
            {
                total += WrapDot(seed, block, scale, distribution, tile.Slice(c, 64), q, 16);
                continue;
            }
            Philox512(q, block, seed, out var x0, out var x1, out var x2, out var x3);
            acc0 = Avx512F.FusedMultiplyAdd(Vector512.Create(tile.Slice(c, 16)), Values512(x0, distribution, unit, bits), acc0);
            acc1 = Avx512F.FusedMultiplyAdd(Vector512.Create(tile.Slice(c + 16, 16)), Values512(x1, distribution, unit, bits), acc1);
            acc2 = Avx512F.FusedMultiplyAdd(Vector512.Create(tile.Slice(c + 32, 16)), Values512(x2, distribution, unit, bits), acc2);
            acc3 = Avx512F.FusedMultiplyAdd(Vector512.Create(tile.Slice(c + 48, 16)), Values512(x3, distribution, unit, bits), acc3);
        }
        return total + Vector512.Sum((acc0 + acc1) + (acc2 + acc3));
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Apply512(ulong seed, float coefficient, uint block, float scale, BasisDistribution distribution, Span<float> tile, ulong start)
    {
        var unit = Vector512.Create(scale * SharedRandomness.TwoToMinus24);
        var bits = Vector512.Create(BitConverter.SingleToUInt32Bits(scale));
        var cv = Vector512.Create(coefficient);
        ulong q = start >> 2;
        for (int c = 0; c < tile.Length; c += 64, q += 16)
        {
            if ((uint)q > uint.MaxValue - 16)
            {
                WrapApply(seed, coefficient, block, scale, distribution, tile.Slice(c, 64), q, 16);
                continue;
            }
            Philox512(q, block, seed, out var x0, out var x1, out var x2, out var x3);
            Sub512(tile.Slice(c, 16), cv * Values512(x0, distribution, unit, bits));
            Sub512(tile.Slice(c + 16, 16), cv * Values512(x1, distribution, unit, bits));
            Sub512(tile.Slice(c + 32, 16), cv * Values512(x2, distribution, unit, bits));
            Sub512(tile.Slice(c + 48, 16), cv * Values512(x3, distribution, unit, bits));
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Sub512(Span<float> w, Vector512<float> t) => (Vector512.Create((ReadOnlySpan<float>)w) - t).CopyTo(w);

    // ---- chunks whose counters carry into the high word (blocks beyond 2^34 elements) -------------

    private static double WrapDot(ulong seed, uint block, float scale, BasisDistribution distribution, ReadOnlySpan<float> chunk, ulong q, int lanes)
    {
        double sum = 0;
        for (int w = 0; w < 4; w++)
        {
            for (int j = 0; j < lanes; j++)
                sum += chunk[(w * lanes) + j] * Element(seed, block, scale, distribution, ((q + (ulong)j) << 2) + (ulong)w);
        }
        return sum;
    }

    private static void WrapApply(ulong seed, float coefficient, uint block, float scale, BasisDistribution distribution, Span<float> chunk, ulong q, int lanes)
    {
        for (int w = 0; w < 4; w++)
        {
            for (int j = 0; j < lanes; j++)
            {
                float t = coefficient * Element(seed, block, scale, distribution, ((q + (ulong)j) << 2) + (ulong)w);
                chunk[(w * lanes) + j] -= t;
            }
        }
    }
}
