using Ferret.Training.Data;
using Ferret.Training.Evaluation;
using Ferret.Training.Runtime;
using Ferret.Training.Tokenization;
using Ferret.Training.Verification;

namespace Ferret.Training.Tests.Runtime;

/// <summary>
/// A GPU provider copies a host parameter input when it is bound, not when the session runs; a binding made
/// once computes with stale (at first: zero) parameters ever after. These tests run the host path with that
/// copy-on-bind behaviour emulated on the CPU (<see cref="SessionSettings.EmulateDeviceInputs"/>) and demand
/// that every run sees the parameters as they are at that moment.
/// </summary>
public sealed class DeviceInputTests(ArtifactFixture artifacts) : IClassFixture<ArtifactFixture>
{
    private static readonly SessionSettings Cpu = new() { IntraOpThreads = 1 };
    private static readonly SessionSettings DeviceLike = new() { IntraOpThreads = 1, EmulateDeviceInputs = true };

    private static float[] Edited(float[] parameters, int seed)
    {
        var random = new Random(seed);
        return parameters.Select(p => p + (0.02f * (float)(random.NextDouble() - 0.5))).ToArray();
    }

    [Fact]
    public void Every_run_computes_with_the_parameters_as_they_are_when_it_runs()
    {
        var package = artifacts.Get("tiny-llama");
        var start = package.LoadParameters();
        var edited = Edited(start, 3);
        var batch = GradientCheck.CheckBatch(package.Manifest.Tokenizer.VocabSize, 24, 2);

        using var reference = new OnnxTrainer(package.Layout, package.TrainGraphPath, package.EvalGraphPath, Cpu);
        start.CopyTo(reference.Parameters, 0);
        float lossAtStart = reference.Loss(batch);
        edited.CopyTo(reference.Parameters, 0);
        float lossEdited = reference.Loss(batch);
        float trainEdited = reference.ForwardBackward(batch);
        var gradientEdited = (float[])reference.Gradients.Clone();
        Assert.True(MathF.Abs(lossAtStart - lossEdited) > 1e-3f, $"the edit must change the loss ({lossAtStart} vs {lossEdited}) for this test to mean anything");

        using var device = new OnnxTrainer(package.Layout, package.TrainGraphPath, package.EvalGraphPath, DeviceLike);
        start.CopyTo(device.Parameters, 0);
        Assert.Equal(lossAtStart, device.Loss(batch), 5);
        edited.CopyTo(device.Parameters, 0);
        Assert.Equal(lossEdited, device.Loss(batch), 5);
        Assert.Equal(trainEdited, device.ForwardBackward(batch), 5);
        float worst = gradientEdited.Zip(device.Gradients, (a, b) => MathF.Abs(a - b)).Max();
        Assert.True(worst < 1e-5f, $"gradients at the edited parameters differ by up to {worst} from the CPU's");
    }

    [Fact]
    public void A_frozen_evaluation_uploads_once_and_sees_edits_made_before_it()
    {
        var package = artifacts.Get("tiny-gpt2");
        var start = package.LoadParameters();
        var edited = Edited(start, 5);
        var batches = Enumerable.Range(0, 3).Select(i => GradientCheck.CheckBatch(package.Manifest.Tokenizer.VocabSize, 16, 10 + i)).ToList();

        using var reference = new OnnxTrainer(package.Layout, package.TrainGraphPath, package.EvalGraphPath, Cpu);
        edited.CopyTo(reference.Parameters, 0);
        var expected = batches.Select(reference.Loss).ToList();

        using var device = new OnnxTrainer(package.Layout, package.TrainGraphPath, package.EvalGraphPath, DeviceLike);
        start.CopyTo(device.Parameters, 0);
        using (device.FreezeParameters())
            _ = batches.Select(device.Loss).ToList();
        edited.CopyTo(device.Parameters, 0);
        using (device.FreezeParameters())
        {
            var actual = batches.Select(device.Loss).ToList();
            for (int i = 0; i < batches.Count; i++)
                Assert.True(MathF.Abs(expected[i] - actual[i]) < 1e-5f, $"batch {i}: frozen evaluation gave {actual[i]}, the CPU {expected[i]}");
        }
    }

    [Theory]
    [InlineData("adamw")]
    [InlineData("sgd")]
    public void Centralized_training_moves_the_model_the_graph_sees(string optimizer)
    {
        var package = artifacts.Get("tiny-llama");
        var encoder = new ExampleEncoder(Tokenizers.FromPackage(package), 48);
        var examples = SyntheticTasks.Sample(["reverse"], 24, 7).Select(encoder.Encode).ToList();
        var options = new TrainingOptions
        {
            Steps = 12,
            BatchSize = 2,
            MicroBatches = 2,
            Optimizer = optimizer,
            LearningRate = optimizer == "sgd" ? 0.1f : 3e-3f,
            Momentum = optimizer == "sgd" ? 0.5f : 0f,
            EvalEvery = 12,
            EvalExamples = 8,
            Session = DeviceLike with { ResidentParameters = false },
        };
        var losses = new List<TrainingProgress>();
        var tuned = CentralizedTraining.Run(package, examples, examples, encoder, options, losses.Add);
        double before = EvalAt(package, package.LoadParameters(), examples.Take(8), encoder);
        double after = EvalAt(package, tuned, examples.Take(8), encoder);
        Assert.True(after < before - 0.2, $"eval loss {before} -> {after}: the optimizer's steps must reach the graph");
        Assert.Equal(after, losses[^1].EvalLoss!.Value, 4);
    }

    [Fact]
    public void Greedy_generation_decodes_with_the_parameters_of_the_moment()
    {
        var package = artifacts.Get("tiny-llama");
        var start = package.LoadParameters();
        var prompt = new[] { 1, 40, 41, 42 };
        List<int> Decode(float[] parameters, SessionSettings settings)
        {
            using var g = new GreedyGenerator(package.Layout, package.LogitsGraphPath, new float[parameters.Length], package.Manifest.Tokenizer.VocabSize, settings);
            g.Generate(prompt, 4, -1);
            parameters.CopyTo(g.Parameters, 0);
            return g.Generate(prompt, 12, -1);
        }
        var reference = Decode(start, Cpu);
        Assert.Equal(reference, Decode(start, DeviceLike));
        Assert.Equal(Decode(Edited(start, 9), Cpu), Decode(Edited(start, 9), DeviceLike));
    }

    private static double EvalAt(Onnx.Artifacts.ArtifactPackage package, float[] parameters, IEnumerable<EncodedExample> examples, ExampleEncoder encoder)
    {
        using var trainer = new OnnxTrainer(package.Layout, package.TrainGraphPath, package.EvalGraphPath, Cpu);
        parameters.CopyTo(trainer.Parameters, 0);
        return CentralizedTraining.EvalLoss(trainer, examples, encoder);
    }
}
