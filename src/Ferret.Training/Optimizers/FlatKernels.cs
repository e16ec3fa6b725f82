using System.Numerics;
using System.Runtime.InteropServices;

namespace Ferret.Training.Optimizers;

/// <summary>
/// Runs an element-wise kernel over large flat vectors in cache-sized chunks, in parallel when the
/// vector is big enough for threads to pay off.
/// </summary>
internal static class FlatKernels
{
    private const int Chunk = 1 << 16;
    private const int ParallelThreshold = 1 << 20;

    public delegate void ChunkBody(int start, int length);

    public static void For(int length, ChunkBody body)
    {
        if (length < ParallelThreshold)
        {
            body(0, length);
            return;
        }
        int chunks = (length + Chunk - 1) / Chunk;
        Parallel.For(0, chunks, c =>
        {
            int start = c * Chunk;
            body(start, Math.Min(Chunk, length - start));
        });
    }

    /// <summary>Sum of squares in double, chunk by chunk, so a long vector loses no precision.</summary>
    public static double SumOfSquares(ReadOnlySpan<float> x)
    {
        double total = 0;
        int i = 0;
        var vs = MemoryMarshal.Cast<float, Vector<float>>(x);
        for (int c = 0; c < vs.Length; c += Chunk / Vector<float>.Count)
        {
            var acc = Vector<float>.Zero;
            int end = Math.Min(vs.Length, c + (Chunk / Vector<float>.Count));
            for (int k = c; k < end; k++)
                acc += vs[k] * vs[k];
            total += Vector.Sum(acc);
        }
        i = vs.Length * Vector<float>.Count;
        for (; i < x.Length; i++)
            total += (double)x[i] * x[i];
        return total;
    }
}
