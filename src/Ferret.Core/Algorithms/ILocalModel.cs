namespace Ferret.Core.Algorithms;

/// <summary>
/// A client's model and data as the algorithms see them: one flat parameter vector, and loss/gradient
/// evaluations on batches chosen by the model for a given local step. ONNX Runtime implements it on edge
/// clients; tests implement it with small analytic objectives.
/// </summary>
public interface ILocalModel
{
    /// <summary>The flat parameter vector <c>w</c>; algorithms edit it in place.</summary>
    Memory<float> Parameters { get; }

    /// <summary>Local training samples (for sample-count weighting).</summary>
    long SampleCount { get; }

    /// <summary>Loss on micro-batch <paramref name="microBatch"/> of local step <paramref name="step"/>; writes <c>d loss / d w</c> into <paramref name="gradient"/>.</summary>
    float ForwardBackward(int step, int microBatch, Span<float> gradient);

    /// <summary>Loss on the batch of local step <paramref name="step"/> at the current parameters (same step, same batch).</summary>
    float Loss(int step);
}
