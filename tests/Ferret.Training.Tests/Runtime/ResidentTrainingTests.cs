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
        var batch = Ferret.Training.Verification.GradientCheck.CheckBatch(package.Manifest.Tokenizer.VocabSize, 16, 2);
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

    [Theory]
    [InlineData("sgd", 0f, 0f, 0f)]
    [InlineData("sgd", 0.9f, 0.01f, 0.5f)]
    [InlineData("adamw", 0f, 0.5f, 0f)]
    [InlineData("adamw", 0f, 0f, 0.5f)]
    public void Resident_accumulation_clipping_and_optimizers_match_the_host_optimizers(string optimizer, float momentum, float weightDecay, float clip)
    {
        var package = artifacts.Get("tiny-gpt2");
        var encoder = new ExampleEncoder(Tokenizers.FromPackage(package), 40);
        var examples = SyntheticTasks.Sample(["reverse", "sort"], 20, 3).Select(encoder.Encode).ToList();
        (float[] Parameters, List<TrainingProgress> Progress) Train(bool resident)
        {
            var progress = new List<TrainingProgress>();
            var options = new TrainingOptions
            {
                Steps = 6,
                BatchSize = 2,
                MicroBatches = 3,
                Optimizer = optimizer,
                LearningRate = optimizer == "sgd" ? 0.05f : 2e-3f,
                Momentum = momentum,
                WeightDecay = weightDecay,
                ClipNorm = clip,
                EvalEvery = 3,
                EvalExamples = 6,
                Session = new SessionSettings { IntraOpThreads = 1, ResidentParameters = resident },
            };
            return (CentralizedTraining.Run(package, examples, examples, encoder, options, progress.Add), progress);
        }
        var host = Train(resident: false);
        var device = Train(resident: true);
        var start = package.LoadParameters();
        float moved = host.Parameters.Zip(start, (a, b) => MathF.Abs(a - b)).Max();
        Assert.True(moved > 1e-4f, $"training moved no parameter by more than {moved}");
        float worst = host.Parameters.Zip(device.Parameters, (a, b) => MathF.Abs(a - b)).Max();
        // AdamW divides by sqrt(v): where a gradient is tiny, float rounding of the gradient moves its step visibly.
        float tolerance = (optimizer == "adamw" ? 3e-3f : 2e-4f) * moved;
        Assert.True(worst <= tolerance, $"resident and host parameters differ by up to {worst} (tolerance {tolerance}) after steps of up to {moved}");
        Assert.Equal(host.Progress.Count, device.Progress.Count);
        for (int i = 0; i < host.Progress.Count; i++)
        {
            Assert.True(Math.Abs(host.Progress[i].TrainLoss - device.Progress[i].TrainLoss) < 1e-3, $"train loss at step {host.Progress[i].Step}: host {host.Progress[i].TrainLoss}, resident {device.Progress[i].TrainLoss}");
            if (host.Progress[i].EvalLoss is double e)
                Assert.True(Math.Abs(e - device.Progress[i].EvalLoss!.Value) < 1e-3, $"eval loss at step {host.Progress[i].Step}: host {e}, resident {device.Progress[i].EvalLoss}");
        }
    }

    [Fact]
    public void The_resident_gradient_norm_and_loss_are_the_hosts()
    {
        var package = artifacts.Get("tiny-llama");
        using var trainer = new OnnxTrainer(package.Layout, package.TrainGraphPath, package.EvalGraphPath, new SessionSettings { ResidentParameters = true });
        package.LoadParameters(trainer.Parameters);
        var a = Ferret.Training.Verification.GradientCheck.CheckBatch(package.Manifest.Tokenizer.VocabSize, 16, 4);
        var b = Ferret.Training.Verification.GradientCheck.CheckBatch(package.Manifest.Tokenizer.VocabSize, 16, 5);
        trainer.ForwardBackward(a);
        var sum = (float[])trainer.Gradients.Clone();
        trainer.ForwardBackward(b);
        System.Numerics.Tensors.TensorPrimitives.Add(sum, trainer.Gradients, sum);
        double expected = Math.Sqrt(sum.Sum(g => (double)g * g));

        var resident = trainer.Resident!;
        resident.Load(trainer.Parameters);
        Assert.Equal(trainer.Loss(a), resident.Loss(a), 5);
        resident.ForwardBackward(a);
        resident.ForwardBackward(b);
        double norm = resident.GradientNorm();
        Assert.True(Math.Abs(norm - expected) < 1e-4 * expected, $"resident norm {norm}, host norm of the summed gradients {expected}");

        // One step of rate 1 moves W by exactly the accumulated gradient (to float rounding).
        resident.Step(1f);
        var after = new float[trainer.Parameters.Length];
        resident.Store(after);
        float worst = 0;
        for (int i = 0; i < after.Length; i++)
            worst = MathF.Max(worst, MathF.Abs(trainer.Parameters[i] - after[i] - sum[i]));
        Assert.True(worst < 1e-5f, $"W_before - W_after differs from the summed gradient by up to {worst}");
        Assert.Equal(2, resident.ParameterBuffers);
    }
}
