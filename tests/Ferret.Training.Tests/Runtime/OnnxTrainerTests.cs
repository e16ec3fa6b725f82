using Ferret.Core.Parameters;
using Ferret.Training.Optimizers;
using Ferret.Training.Runtime;
using Ferret.Training.Verification;

namespace Ferret.Training.Tests.Runtime;

public sealed class OnnxTrainerTests(ArtifactFixture artifacts) : IClassFixture<ArtifactFixture>
{
    [Fact]
    public void Parameters_are_bound_zero_copy_so_sgd_steps_lower_the_loss()
    {
        var package = artifacts.Get("tiny-llama");
        using var trainer = new OnnxTrainer(package.Layout, package.TrainGraphPath, package.EvalGraphPath, new SessionSettings { IntraOpThreads = 2 });
        package.LoadParameters().CopyTo(trainer.Parameters, 0);
        var batch = GradientCheck.CheckBatch(package.Manifest.Tokenizer.VocabSize, 32, 3);
        float first = trainer.Loss(batch);
        var sgd = new Sgd(0.05f);
        for (int i = 0; i < 5; i++)
        {
            trainer.ForwardBackward(batch);
            sgd.Step(trainer.Parameters, trainer.Gradients);
        }
        float after = trainer.Loss(batch);
        Assert.True(after < first - 0.1f, $"loss {first} -> {after}");
        Assert.NotEqual(package.Manifest.ParametersSha256, ModelFingerprint.Compute(trainer.Parameters));
    }

    [Fact]
    public void A_layout_that_disagrees_with_the_graph_is_refused_naming_the_graph()
    {
        var package = artifacts.Get("tiny-gpt2");
        var wrong = new ParameterLayout(package.Layout.Tensors.Select(t => (t.Name == "transformer.ln_f.bias" ? "transformer.ln_f.shift" : t.Name, t.Shape)));
        var e = Assert.Throws<InvalidDataException>(() => new OnnxTrainer(wrong, package.TrainGraphPath, null, new SessionSettings()));
        Assert.Contains(package.TrainGraphPath, e.Message);
        Assert.Contains("transformer.ln_f.shift", e.Message);
    }

    [Fact]
    public void Token_ids_outside_the_vocabulary_are_reported_before_running()
    {
        var batch = TokenBatch.FromSequence([1, 2, 999]);
        Assert.Contains("input_ids[0, 2] = 999", Assert.Throws<ArgumentException>(() => batch.Validate(259)).Message);
    }

    [Fact]
    public void Devices_parse_and_cuda_without_the_gpu_runtime_says_what_to_install()
    {
        Assert.Equal("cuda:1", ExecutionDevice.Parse("cuda:1").ToString());
        Assert.Throws<ArgumentException>(() => ExecutionDevice.Parse("tpu"));
        var e = Assert.Throws<NotSupportedException>(() => new SessionSettings { Device = ExecutionDevice.Cuda() }.CreateOptions().Dispose());
        Assert.Contains("Microsoft.ML.OnnxRuntime.Gpu", e.Message);
    }
}
