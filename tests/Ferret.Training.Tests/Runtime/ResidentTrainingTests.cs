using Ferret.Core.Algorithms;
using Ferret.Core.Packets;
using Ferret.Training.Data;
using Ferret.Training.Runtime;
using Ferret.Training.Simulation;
using Ferret.Training.Tokenization;

namespace Ferret.Training.Tests.Runtime;

/// <summary>
/// Device-resident first-order loops (the CUDA path's design), run here with ONNX Runtime's CPU allocator:
/// the same local training as the host loop, with parameters, gradients and SGD in provider memory.
/// </summary>
public sealed class ResidentTrainingTests(ArtifactFixture artifacts) : IClassFixture<ArtifactFixture>
{
    private static (FullDeltaUpdate Packet, float[] Parameters, string? Location) TrainFedAvg(Onnx.Artifacts.ArtifactPackage package, bool resident, int microBatches)
    {
        var settings = new SessionSettings { IntraOpThreads = 1, ResidentParameters = resident };
        using var trainer = new OnnxTrainer(package.Layout, package.TrainGraphPath, package.EvalGraphPath, settings);
        var initial = package.LoadParameters();
        initial.CopyTo(trainer.Parameters, 0);
        var encoder = new ExampleEncoder(Tokenizers.FromPackage(package), 48);
        var examples = SyntheticTasks.Sample(["reverse", "upper"], 12, 5).Select(encoder.Encode).ToList();
        var model = new OnnxLocalModel(trainer, encoder, examples, microBatches);
        model.StartRound(1);
        var descriptor = ExperimentDescriptor.Create("resident", FederatedAlgorithms.FedAvg,
            new AlgorithmSettings { LocalSteps = 3, MicroBatches = microBatches, LocalLearningRate = 0.05 }, 9, package.Blocks, package.Manifest.ParametersSha256, 1, 1.0);
        var algorithm = FederatedAlgorithms.Create(descriptor, package.Blocks);
        var packet = Assert.IsType<FullDeltaUpdate>(algorithm.Train(1, model, new Random(1)));
        return (packet, (float[])trainer.Parameters.Clone(), trainer.Resident?.Location);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    public void A_resident_loop_computes_the_host_loops_delta_and_leaves_the_parameters_as_they_were(int microBatches)
    {
        var package = artifacts.Get("tiny-gpt2");
        var host = TrainFedAvg(package, resident: false, microBatches);
        var resident = TrainFedAvg(package, resident: true, microBatches);
        Assert.Null(host.Location);
        Assert.Equal("Cpu", resident.Location);

        // Same batches, same steps: the deltas agree to float rounding (ORT's Add/Mul/Sub against TensorPrimitives' fused multiply-add).
        float scale = host.Packet.Delta.Max(MathF.Abs);
        Assert.True(scale > 1e-4f, $"the loop moved the parameters by at most {scale}");
        float worst = host.Packet.Delta.Zip(resident.Packet.Delta, (a, b) => MathF.Abs(a - b)).Max();
        Assert.True(worst <= 1e-5f * scale + 1e-8f, $"largest difference {worst} against a largest step of {scale}");
        Assert.Equal(host.Packet.Stats.Loss, resident.Packet.Stats.Loss, 4);
        Assert.Equal(3 * microBatches, resident.Packet.Stats.ForwardPasses);

        var initial = package.LoadParameters();
        Assert.Equal(initial, host.Parameters);
        Assert.Equal(initial, resident.Parameters);
    }

    [Fact]
    public void The_host_api_still_works_on_a_trainer_with_resident_buffers()
    {
        var package = artifacts.Get("tiny-gpt2");
        using var trainer = new OnnxTrainer(package.Layout, package.TrainGraphPath, package.EvalGraphPath, new SessionSettings { ResidentParameters = true });
        package.LoadParameters().CopyTo(trainer.Parameters, 0);
        var batch = Verification.GradientCheck.CheckBatch(package.Manifest.Tokenizer.VocabSize, 16, 2);
        float loss = trainer.ForwardBackward(batch);
        Assert.Equal(loss, trainer.Loss(batch), 4);
        Assert.Contains(trainer.Gradients, g => g != 0);

        // Round trip through provider memory is exact.
        var resident = trainer.Resident!;
        resident.Load(trainer.Parameters);
        var back = new float[trainer.Parameters.Length];
        resident.Store(back);
        Assert.Equal(trainer.Parameters, back);
    }
}
