namespace Ferret.Training.Optimizers;

/// <summary>A first-order optimizer over one flat parameter vector and its flat gradient.</summary>
public interface IOptimizer
{
    /// <summary>Updates <paramref name="parameters"/> in place from <paramref name="gradients"/>.</summary>
    void Step(Span<float> parameters, ReadOnlySpan<float> gradients);

    /// <summary>Forgets all state (momentum, moments, step count), as at construction.</summary>
    void Reset();

    /// <summary>Learning rate of the next step; schedules set it between steps.</summary>
    float LearningRate { get; set; }
}
