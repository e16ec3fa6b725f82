using System.Numerics;
using System.Runtime.InteropServices;

namespace Ferret.Training.Optimizers;

/// <summary>
/// AdamW as PyTorch's <c>torch.optim.AdamW</c>: decoupled decay <c>w *= 1 - lr * wd</c>, moments
/// <c>m, v</c>, bias correction, <c>w -= lr * m_hat / (sqrt(v_hat) + eps)</c>. One fused SIMD pass per step.
/// </summary>
public sealed class AdamW : IOptimizer
{
    private readonly float _beta1;
    private readonly float _beta2;
    private readonly float _epsilon;
    private readonly float _weightDecay;
    private float[]? _m;
    private float[]? _v;
    private int _step;

    public AdamW(float learningRate = 1e-3f, float beta1 = 0.9f, float beta2 = 0.999f, float epsilon = 1e-8f, float weightDecay = 0.01f)
    {
        if (!float.IsFinite(learningRate) || learningRate < 0)
            throw new ArgumentOutOfRangeException(nameof(learningRate), learningRate, "The learning rate must be finite and non-negative.");
        if (!(beta1 is >= 0f and < 1f))
            throw new ArgumentOutOfRangeException(nameof(beta1), beta1, "beta1 must lie in [0, 1).");
        if (!(beta2 is >= 0f and < 1f))
            throw new ArgumentOutOfRangeException(nameof(beta2), beta2, "beta2 must lie in [0, 1).");
        if (!(epsilon > 0) || !float.IsFinite(epsilon))
            throw new ArgumentOutOfRangeException(nameof(epsilon), epsilon, "epsilon must be positive and finite.");
        if (!float.IsFinite(weightDecay) || weightDecay < 0)
            throw new ArgumentOutOfRangeException(nameof(weightDecay), weightDecay, "Weight decay must be finite and non-negative.");
        LearningRate = learningRate;
        _beta1 = beta1;
        _beta2 = beta2;
        _epsilon = epsilon;
        _weightDecay = weightDecay;
    }

    public float LearningRate { get; set; }

    /// <summary>Steps taken since construction or <see cref="Reset"/>.</summary>
    public int StepCount => _step;

    public void Step(Span<float> parameters, ReadOnlySpan<float> gradients)
    {
        if (parameters.Length != gradients.Length)
            throw new ArgumentException($"{parameters.Length} parameters but {gradients.Length} gradients.");
        _m ??= new float[parameters.Length];
        _v ??= new float[parameters.Length];
        if (_m.Length != parameters.Length)
            throw new ArgumentException($"This optimizer holds state for {_m.Length} parameters, not {parameters.Length}.");
        _step++;
        float lr = LearningRate;
        float decay = 1f - (lr * _weightDecay);
        float c1 = 1f - MathF.Pow(_beta1, _step);
        float c2 = 1f - MathF.Pow(_beta2, _step);
        float stepSize = lr / c1;
        float invSqrtC2 = 1f / MathF.Sqrt(c2);
        var m = _m;
        var v = _v;
        unsafe
        {
            fixed (float* w = parameters)
            fixed (float* g = gradients)
            {
                float* wp = w;
                float* gp = g;
                FlatKernels.For(parameters.Length, (start, length) => Update(
                    new Span<float>(wp + start, length), new ReadOnlySpan<float>(gp + start, length),
                    m.AsSpan(start, length), v.AsSpan(start, length), decay, stepSize, invSqrtC2));
            }
        }
    }

    private void Update(Span<float> w, ReadOnlySpan<float> g, Span<float> m, Span<float> v, float decay, float stepSize, float invSqrtC2)
    {
        float b1 = _beta1, b2 = _beta2, eps = _epsilon;
        int i = 0;
        if (Vector.IsHardwareAccelerated && w.Length >= Vector<float>.Count)
        {
            var wv = MemoryMarshal.Cast<float, Vector<float>>(w);
            var gv = MemoryMarshal.Cast<float, Vector<float>>(g);
            var mv = MemoryMarshal.Cast<float, Vector<float>>(m);
            var vv = MemoryMarshal.Cast<float, Vector<float>>(v);
            var vb1 = new Vector<float>(b1);
            var vb2 = new Vector<float>(b2);
            var v1b1 = new Vector<float>(1 - b1);
            var v1b2 = new Vector<float>(1 - b2);
            var vdecay = new Vector<float>(decay);
            var vstep = new Vector<float>(stepSize);
            var vinv = new Vector<float>(invSqrtC2);
            var veps = new Vector<float>(eps);
            for (int k = 0; k < wv.Length; k++)
            {
                var gk = gv[k];
                var mk = (vb1 * mv[k]) + (v1b1 * gk);
                var vk = (vb2 * vv[k]) + (v1b2 * gk * gk);
                mv[k] = mk;
                vv[k] = vk;
                wv[k] = (wv[k] * vdecay) - (vstep * mk / ((Vector.SquareRoot(vk) * vinv) + veps));
            }
            i = wv.Length * Vector<float>.Count;
        }
        for (; i < w.Length; i++)
        {
            float gi = g[i];
            float mi = (b1 * m[i]) + ((1 - b1) * gi);
            float vi = (b2 * v[i]) + ((1 - b2) * gi * gi);
            m[i] = mi;
            v[i] = vi;
            w[i] = (w[i] * decay) - (stepSize * mi / ((MathF.Sqrt(vi) * invSqrtC2) + eps));
        }
    }

    public void Reset()
    {
        _m = null;
        _v = null;
        _step = 0;
    }
}
