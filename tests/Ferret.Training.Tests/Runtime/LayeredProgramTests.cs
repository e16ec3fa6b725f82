using Ferret.Onnx.Artifacts;
using Ferret.Training.Runtime;
using Ferret.Training.Verification;

namespace Ferret.Training.Tests.Runtime;

/// <summary>
/// Activation recompute (<c>--recompute layers</c>): the layer blocks run one session at a time must give the
/// whole training graph's losses and accumulated gradient, for both families (GPT-2's tied embedding table
/// takes gradient from the head and from the embedding backward).
/// </summary>
public sealed class LayeredProgramTests(ArtifactFixture artifacts) : IClassFixture<ArtifactFixture>
{
    /// <summary>Three micro-batches with padding and ignored labels; the last has another shape, so the boundaries are reallocated.</summary>
    private static TokenBatch[] MicroBatches(int vocab) =>
        [GradientCheck.CheckBatch(vocab, 24, 11), GradientCheck.CheckBatch(vocab, 24, 12), GradientCheck.CheckBatch(vocab, 40, 13)];

    /// <summary>Accumulates the micro-batches into a zero G and reads G back tensor by tensor.</summary>
    private static (float[] Losses, float[] Gradient, Type Program, int Buffers) Accumulate(ArtifactPackage package, TokenBatch[] batches)
    {
        using var resident = ResidentTraining.Open(package, new SessionSettings { IntraOpThreads = 1 }, withEvaluation: false);
        resident.Load(package);
        var losses = batches.Select(resident.ForwardBackward).ToArray();
        var g = new float[package.Layout.TotalLength];
        for (int i = 0; i < package.Layout.Tensors.Count; i++)
        {
            var t = package.Layout.Tensors[i];
            resident.DownloadGradient(i, g.AsSpan((int)t.Offset, (int)t.Length));
        }
        return (losses, g, resident.Program.GetType(), resident.ParameterBuffers);
    }

    [Theory]
    [InlineData("tiny-llama")]
    [InlineData("tiny-gpt2")]
    [InlineData(ArtifactFixture.TiedLlama)]
    public void Layered_accumulation_gives_the_whole_graphs_losses_and_gradient(string model)
    {
        var whole = artifacts.Get(model, recompute: false);
        var layered = artifacts.Get(model, recompute: true);
        Assert.Equal(whole.Manifest.ParametersSha256, layered.Manifest.ParametersSha256);
        var batches = MicroBatches(whole.Manifest.Tokenizer.VocabSize);

        var reference = Accumulate(whole, batches);
        var recompute = Accumulate(layered, batches);
        Assert.Equal(typeof(AccumulatingGraphProgram), reference.Program);
        Assert.Equal(typeof(LayeredProgram), recompute.Program);
        Assert.Equal(2, recompute.Buffers);

        for (int i = 0; i < batches.Length; i++)
            Assert.True(Math.Abs(reference.Losses[i] - recompute.Losses[i]) <= 1e-6 * Math.Abs(reference.Losses[i]), $"micro-batch {i}: whole graph loss {reference.Losses[i]}, layered {recompute.Losses[i]}");

        // The same float32 operators, one thread: on this machine the layers' gradients come out bit for bit. What may
        // differ is association: a tied table's two contributions (head, embedding backward) are added to G one at a
        // time rather than summed first, and fusions can differ across session boundaries. 4e-6 of the largest
        // gradient is about 32 float32 ulps of it.
        double scale = reference.Gradient.Max(MathF.Abs);
        Assert.True(scale > 1e-3, $"the accumulated gradient is {scale} at most");
        var tensors = whole.Layout.Tensors;
        foreach (var t in tensors)
        {
            double worst = 0, norm = 0;
            for (long i = t.Offset; i < t.Offset + t.Length; i++)
            {
                worst = Math.Max(worst, Math.Abs((double)reference.Gradient[i] - recompute.Gradient[i]));
                norm = Math.Max(norm, Math.Abs(reference.Gradient[i]));
            }
            Assert.True(norm > 0, $"no gradient reached '{t.Name}'");
            Assert.True(worst <= 4e-6 * scale, $"'{t.Name}': the layered gradient differs by up to {worst:E3} (largest gradient {scale:E3}, of this tensor {norm:E3})");
        }
    }

    [Fact]
    public void Gradcheck_on_a_recompute_package_checks_the_layered_gradient_too()
    {
        var package = artifacts.Get("tiny-gpt2", recompute: true);
        var result = GradientCheck.Run(package, directions: 2);
        Assert.NotNull(result.Recompute);
        Assert.Equal(result.Directions.Count, result.Recompute!.Count);
        Assert.True(result.MaxRelativeError < 1e-3, $"largest relative error {result.MaxRelativeError:E3}");
        foreach (var (whole, layered) in result.Directions.Zip(result.Recompute))
            Assert.True(Math.Abs(whole.Analytic - layered.Analytic) <= 1e-5 * Math.Abs(whole.Analytic), $"direction {whole.Direction}: train.onnx {whole.Analytic}, layered {layered.Analytic}");
    }
}
