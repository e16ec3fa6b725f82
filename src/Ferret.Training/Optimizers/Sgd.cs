using System.Numerics.Tensors;

namespace Ferret.Training.Optimizers;

/// <summary>
/// Stochastic gradient descent as PyTorch's <c>torch.optim.SGD</c>: coupled weight decay
/// (<c>g += wd * w</c>), optional momentum buffer <c>b = mu * b + g</c> (Nesterov: step along
/// <c>g + mu * b</c>), then <c>w -= lr * step</c>. Ferret's reference local optimizer is plain SGD.
/// </summary>
public sealed class Sgd : IOptimizer
{
    private readonly float _momentum;
    private readonly float _weightDecay;
    private readonly bool _nesterov;
    private float[]? _buffer;

    public Sgd(float learningRate, float momentum = 0f, float weightDecay = 0f, bool nesterov = false)
    {
        if (!float.IsFinite(learningRate) || learningRate < 0)
            throw new ArgumentOutOfRangeException(nameof(learningRate), learningRate, "The learning rate must be finite and non-negative.");
        if (!(momentum is >= 0f and < 1f))
            throw new ArgumentOutOfRangeException(nameof(momentum), momentum, "Momentum must lie in [0, 1).");
        if (!float.IsFinite(weightDecay) || weightDecay < 0)
            throw new ArgumentOutOfRangeException(nameof(weightDecay), weightDecay, "Weight decay must be finite and non-negative.");
        if (nesterov && momentum == 0)
            throw new ArgumentException("Nesterov momentum needs a positive momentum.", nameof(nesterov));
        LearningRate = learningRate;
        _momentum = momentum;
        _weightDecay = weightDecay;
        _nesterov = nesterov;
    }

    public float LearningRate { get; set; }

    public void Step(Span<float> parameters, ReadOnlySpan<float> gradients)
    {
        if (parameters.Length != gradients.Length)
            throw new ArgumentException($"{parameters.Length} parameters but {gradients.Length} gradients.");
        if (_momentum == 0 && _weightDecay == 0)
        {
            // w = w - lr * g: one fused pass.
            TensorPrimitives.MultiplyAdd(gradients, -LearningRate, parameters, parameters);
            return;
        }
        if (_momentum > 0)
            _buffer ??= new float[parameters.Length];
        unsafe
        {
            fixed (float* w = parameters)
            fixed (float* g = gradients)
            {
                float* wp = w;
                float* gp = g;
                FlatKernels.For(parameters.Length, (start, length) => StepChunk(
                    new Span<float>(wp + start, length), new ReadOnlySpan<float>(gp + start, length),
                    _buffer is null ? default : _buffer.AsSpan(start, length)));
            }
        }
    }

    private void StepChunk(Span<float> w, ReadOnlySpan<float> g, Span<float> buffer)
    {
        Span<float> step = stackalloc float[0];
        float[]? rented = null;
        if (_weightDecay != 0)
        {
            rented = System.Buffers.ArrayPool<float>.Shared.Rent(w.Length);
            step = rented.AsSpan(0, w.Length);
            TensorPrimitives.MultiplyAdd(w, _weightDecay, g, step);
        }
        ReadOnlySpan<float> d = _weightDecay != 0 ? step : g;
        try
        {
            if (_momentum > 0)
            {
                // b = mu * b + d
                TensorPrimitives.MultiplyAdd(buffer, _momentum, d, buffer);
                if (_nesterov)
                {
                    // w -= lr * (d + mu * b)
                    TensorPrimitives.MultiplyAdd(buffer, -LearningRate * _momentum, w, w);
                    TensorPrimitives.MultiplyAdd(d, -LearningRate, w, w);
                }
                else
                {
                    TensorPrimitives.MultiplyAdd(buffer, -LearningRate, w, w);
                }
            }
            else
            {
                TensorPrimitives.MultiplyAdd(d, -LearningRate, w, w);
            }
        }
        finally
        {
            if (rented is not null)
                System.Buffers.ArrayPool<float>.Shared.Return(rented);
        }
    }

    public void Reset() => _buffer = null;
}
