using Ferret.Core.Parameters;

namespace Ferret.Onnx.Weights;

/// <summary>
/// A model's parameters produced a slice at a time, in flat order (a seeded initializer, a checkpoint on disk),
/// so exporting or verifying a model never holds all of it.
/// </summary>
public interface IParameterSource : IDisposable
{
    /// <summary>The tensors, in the order their slices are asked for.</summary>
    ParameterLayout Layout { get; }

    /// <summary>
    /// Fills <paramref name="destination"/> with elements <c>start .. start + destination.Length</c> of tensor
    /// <paramref name="tensor"/> of <see cref="Layout"/>. Callers ask for slices in flat order.
    /// </summary>
    void Read(int tensor, long start, Memory<float> destination);
}
