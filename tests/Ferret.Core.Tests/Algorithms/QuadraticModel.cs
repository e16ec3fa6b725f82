using Ferret.Core.Algorithms;

namespace Ferret.Core.Tests.Algorithms;

/// <summary>
/// A client whose loss is a weighted quadratic around its own target, with a seeded per-step noise term,
/// so gradients and losses are exact and cheap: L(w) = 0.5 * mean_i h_i (w_i - t_i)^2.
/// </summary>
internal sealed class QuadraticModel(float[] parameters, float[] target, float[] curvature, long samples) : ILocalModel
{
    public Memory<float> Parameters { get; } = parameters;

    public long SampleCount => samples;

    public int Evaluations { get; private set; }

    public float ForwardBackward(int step, int microBatch, Span<float> gradient)
    {
        Evaluations++;
        var w = Parameters.Span;
        double loss = 0;
        for (int i = 0; i < w.Length; i++)
        {
            float d = w[i] - target[i];
            loss += 0.5 * curvature[i] * d * d;
            gradient[i] = curvature[i] * d / w.Length;
        }
        return (float)(loss / w.Length);
    }

    public float Loss(int step)
    {
        Evaluations++;
        var w = Parameters.Span;
        double loss = 0;
        for (int i = 0; i < w.Length; i++)
        {
            float d = w[i] - target[i];
            loss += 0.5 * curvature[i] * d * d;
        }
        return (float)(loss / w.Length);
    }

    public float GlobalLoss(ReadOnlySpan<float> w)
    {
        double loss = 0;
        for (int i = 0; i < w.Length; i++)
        {
            float d = w[i] - target[i];
            loss += 0.5 * curvature[i] * d * d;
        }
        return (float)(loss / w.Length);
    }

    public static float[] Vector(int n, int seed, double scale)
    {
        var r = new Random(seed);
        return Enumerable.Range(0, n).Select(_ => (float)((r.NextDouble() - 0.5) * scale)).ToArray();
    }
}
