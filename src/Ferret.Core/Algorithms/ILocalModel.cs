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

/// <summary>
/// A model that runs whole first-order local loops itself, where its runtime keeps the parameters (GPU
/// memory, for instance): the same T steps of SGD over n_accum micro-batches as the host loop, with only the
/// round's delta coming back. Algorithms use it when the model offers it, and the host loop otherwise.
/// </summary>
public interface IFirstOrderLocalModel : ILocalModel
{
    /// <summary>
    /// From <see cref="ILocalModel.Parameters"/>: <paramref name="steps"/> steps, each
    /// <c>w -= rate * sum of microBatches gradients</c>; returns <c>delta = w_before - w_after</c> (readable until the
    /// next training call or its disposal) and the mean loss, or null when the model has no better way than the
    /// host loop right now. <see cref="ILocalModel.Parameters"/> are unchanged.
    /// </summary>
    (ILocalUpdate Update, double MeanLoss)? TryTrainFirstOrder(int steps, int microBatches, float rate, CancellationToken cancellationToken);
}
