using System.Numerics.Tensors;

namespace Ferret.Training.Optimizers;

/// <summary>Global-norm gradient clipping, as <c>torch.nn.utils.clip_grad_norm_</c>.</summary>
public static class GradientClipping
{
    /// <summary>
    /// Scales <paramref name="gradients"/> so their L2 norm is at most <paramref name="maxNorm"/> and returns
    /// the norm before clipping. A non-finite norm is reported, not hidden: the gradients are left as they are.
    /// </summary>
    public static float ClipByGlobalNorm(Span<float> gradients, float maxNorm)
    {
        if (!(maxNorm > 0) || !float.IsFinite(maxNorm))
            throw new ArgumentOutOfRangeException(nameof(maxNorm), maxNorm, "The clipping norm must be positive and finite.");
        float norm = (float)Math.Sqrt(FlatKernels.SumOfSquares(gradients));
        if (float.IsFinite(norm) && norm > maxNorm)
            TensorPrimitives.Multiply(gradients, maxNorm / (norm + 1e-6f), gradients);
        return norm;
    }
}
