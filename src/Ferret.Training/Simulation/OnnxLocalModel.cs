using Ferret.Core.Algorithms;
using Ferret.Core.Parameters;
using Ferret.Training.Data;
using Ferret.Training.Runtime;

namespace Ferret.Training.Simulation;

/// <summary>
/// A client's model as the algorithms see it: ONNX Runtime over the flat parameter buffer, and the client's
/// own examples, one per micro-batch (batch size 1, as the paper), visited in a per-round shuffled order.
/// </summary>
public sealed class OnnxLocalModel : IFirstOrderLocalModel
{
    private readonly OnnxTrainer _trainer;
    private readonly ExampleEncoder _encoder;
    private readonly IReadOnlyList<EncodedExample> _examples;
    private readonly int _microBatches;
    private int[] _order;

    public OnnxLocalModel(OnnxTrainer trainer, ExampleEncoder encoder, IReadOnlyList<EncodedExample> examples, int microBatches)
    {
        ArgumentNullException.ThrowIfNull(trainer);
        ArgumentNullException.ThrowIfNull(encoder);
        ArgumentNullException.ThrowIfNull(examples);
        if (examples.Count == 0)
            throw new ArgumentException("A client needs at least one example.", nameof(examples));
        _trainer = trainer;
        _encoder = encoder;
        _examples = examples;
        _microBatches = Math.Max(1, microBatches);
        _order = Enumerable.Range(0, examples.Count).ToArray();
    }

    public Memory<float> Parameters => _trainer.Parameters;

    public long SampleCount => _examples.Count;

    /// <summary>Reshuffles the visiting order for a new round (seeded per client and round).</summary>
    public void StartRound(int seed) => new Random(seed).Shuffle(_order);

    private Runtime.TokenBatch Example(int step, int microBatch) =>
        _encoder.Collate([_examples[_order[((step * _microBatches) + microBatch) % _order.Length]]]);

    public float ForwardBackward(int step, int microBatch, Span<float> gradient)
    {
        float loss = _trainer.ForwardBackward(Example(step, microBatch));
        _trainer.Gradients.CopyTo(gradient);
        return loss;
    }

    public float Loss(int step) => _trainer.Loss(Example(step, 0));

    /// <summary>
    /// With device-resident buffers (CUDA by default) the whole loop stays on the device and the update is read
    /// back block by block when it is projected (<see cref="ResidentUpdate"/>); on host buffers (the CPU, where they
    /// are already zero-copy) the algorithms' own loop runs instead.
    /// </summary>
    public (ILocalUpdate Update, double MeanLoss)? TryTrainFirstOrder(int steps, int microBatches, float rate, CancellationToken cancellationToken)
    {
        if (_trainer.Resident is not { } resident)
            return null;
        double lossSum = 0;
        resident.Load(_trainer.Parameters);
        for (int step = 0; step < steps; step++)
        {
            for (int m = 0; m < microBatches; m++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                lossSum += resident.ForwardBackward(Example(step, m));
            }
            resident.Step(rate);
        }
        return (new ResidentUpdate(resident, HostParameters.Wrap(_trainer.Parameters), _trainer.Layout), lossSum / Math.Max(1, steps * microBatches));
    }
}
