using Ferret.Core.Parameters;
using Ferret.Onnx.Models;

namespace Ferret.Onnx.Weights;

/// <summary>How a preset's seeded weights are drawn. Both follow Hugging Face's scheme (<see cref="WeightRoles"/>).</summary>
public enum WeightInitializer
{
    /// <summary>
    /// <see cref="Random"/> seeded once, Box-Muller in double, one value after another through the whole vector:
    /// the small presets' weights, kept bit for bit (tests and fixtures pin them). Single-threaded.
    /// </summary>
    SystemRandom,

    /// <summary>
    /// Counter-based Philox normals (<see cref="Core.Randomness.PhiloxNormal"/>), one stream per tensor: vectorised,
    /// multi-threaded, the same bits on any thread count. For presets with billions of weights.
    /// </summary>
    Philox,
}

/// <summary>What a parameter starts as under Hugging Face's initialisation.</summary>
public static class WeightRoles
{
    /// <summary>
    /// Norm scales 1, biases 0, everything else normal(0, initializer_range), GPT-2's residual projections
    /// scaled by 1/sqrt(2 * layers). Returns the constant, or null and the standard deviation.
    /// </summary>
    public static (float? Constant, double Std) Of(string name, ModelConfig config)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(config);
        if (name.EndsWith("norm.weight", StringComparison.Ordinal) || name.Contains(".ln_", StringComparison.Ordinal) && name.EndsWith(".weight", StringComparison.Ordinal))
            return (1f, 0);
        if (name.EndsWith(".bias", StringComparison.Ordinal))
            return (0f, 0);
        double std = config.InitializerRange;
        return (null, name.EndsWith("c_proj.weight", StringComparison.Ordinal) ? std / Math.Sqrt(2.0 * config.Layers) : std);
    }

    /// <summary>The name a manifest records for an initializer.</summary>
    public static string ManifestName(WeightInitializer initializer) => initializer switch
    {
        WeightInitializer.SystemRandom => "system-random-box-muller",
        WeightInitializer.Philox => "philox-box-muller",
        _ => throw new ArgumentOutOfRangeException(nameof(initializer), initializer, null),
    };

    /// <summary>The seeded weights of a model, produced by <paramref name="initializer"/>.</summary>
    public static IParameterSource Open(WeightInitializer initializer, ModelConfig config, ParameterLayout layout, int seed) => initializer switch
    {
        WeightInitializer.SystemRandom => new SystemRandomWeights(config, layout, seed),
        WeightInitializer.Philox => new PhiloxWeights(config, layout, seed),
        _ => throw new ArgumentOutOfRangeException(nameof(initializer), initializer, null),
    };
}
