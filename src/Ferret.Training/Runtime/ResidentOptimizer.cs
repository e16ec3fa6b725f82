namespace Ferret.Training.Runtime;

/// <summary>
/// The optimizer of a <see cref="ResidentTraining"/> step, applied where the buffers live: PyTorch's SGD (momentum,
/// coupled weight decay, Nesterov) or AdamW (decoupled decay). The same hyper-parameters as the host optimizers
/// in <see cref="Optimizers"/>, which remain the reference the resident graphs are tested against.
/// </summary>
public sealed record ResidentOptimizer
{
    private ResidentOptimizer(string kind) => Kind = kind;

    /// <summary><c>sgd</c> or <c>adamw</c>.</summary>
    public string Kind { get; }

    public float Momentum { get; private init; }

    public bool Nesterov { get; private init; }

    public float WeightDecay { get; private init; }

    public float Beta1 { get; private init; } = 0.9f;

    public float Beta2 { get; private init; } = 0.999f;

    public float Epsilon { get; private init; } = 1e-8f;

    public static ResidentOptimizer Sgd(float momentum = 0f, float weightDecay = 0f, bool nesterov = false)
    {
        if (!(momentum is >= 0f and < 1f))
            throw new ArgumentOutOfRangeException(nameof(momentum), momentum, "Momentum must lie in [0, 1).");
        if (!float.IsFinite(weightDecay) || weightDecay < 0)
            throw new ArgumentOutOfRangeException(nameof(weightDecay), weightDecay, "Weight decay must be finite and non-negative.");
        if (nesterov && momentum == 0)
            throw new ArgumentException("Nesterov momentum needs a positive momentum.", nameof(nesterov));
        return new ResidentOptimizer("sgd") { Momentum = momentum, WeightDecay = weightDecay, Nesterov = nesterov };
    }

    public static ResidentOptimizer AdamW(float weightDecay = 0.01f, float beta1 = 0.9f, float beta2 = 0.999f, float epsilon = 1e-8f)
    {
        if (!float.IsFinite(weightDecay) || weightDecay < 0)
            throw new ArgumentOutOfRangeException(nameof(weightDecay), weightDecay, "Weight decay must be finite and non-negative.");
        if (!(beta1 is >= 0f and < 1f) || !(beta2 is >= 0f and < 1f))
            throw new ArgumentOutOfRangeException(nameof(beta1), "beta1 and beta2 must lie in [0, 1).");
        if (!(epsilon > 0) || !float.IsFinite(epsilon))
            throw new ArgumentOutOfRangeException(nameof(epsilon), epsilon, "epsilon must be positive and finite.");
        return new ResidentOptimizer("adamw") { WeightDecay = weightDecay, Beta1 = beta1, Beta2 = beta2, Epsilon = epsilon };
    }

    /// <summary>Plain SGD, Ferret's reference local optimizer.</summary>
    public static ResidentOptimizer PlainSgd { get; } = Sgd();

    /// <summary>Parameter-sized state buffers this optimizer keeps: 0 (plain SGD), 1 (momentum) or 2 (AdamW).</summary>
    public int StateBuffers => Kind == "adamw" ? 2 : Momentum > 0 ? 1 : 0;
}
