using Ferret.Training.Verification;

namespace Ferret.Training.Tests.Reference;

/// <summary>
/// End-to-end finite differences on the exported float32 training graphs: with a step of 1e-3 along
/// gradient-mixed unit directions the truncation and rounding errors stay near 1e-4, so 1e-3 is the bound.
/// </summary>
public sealed class GradientCheckTests(ArtifactFixture artifacts) : IClassFixture<ArtifactFixture>
{
    [Theory]
    [InlineData("tiny-llama")]
    [InlineData("tiny-gpt2")]
    public void Exported_training_graphs_pass_the_gradient_check(string preset)
    {
        var result = GradientCheck.Run(artifacts.Get(preset), directions: 3);
        Assert.True(result.MaxRelativeError < 1e-3, $"{preset}: largest relative error {result.MaxRelativeError:E2}");
        Assert.All(result.Directions, d => Assert.True(d.Analytic > 0, "expected d.Analytic > 0"));
    }
}

/// <summary>A LLaMA whose LM head is its embedding table: both uses of the one tensor add up in its gradient.</summary>
public sealed class TiedEmbeddingTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "ferret-tied-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_dir))
            Directory.Delete(_dir, recursive: true);
    }

    [Fact]
    public void A_tied_llama_has_no_lm_head_parameter_and_passes_the_gradient_check()
    {
        var hf = Path.Combine(_dir, "hf");
        Directory.CreateDirectory(hf);
        var config = new System.Text.Json.Nodes.JsonObject
        {
            ["model_type"] = "llama",
            ["vocab_size"] = 300,
            ["hidden_size"] = 32,
            ["intermediate_size"] = 64,
            ["num_hidden_layers"] = 2,
            ["num_attention_heads"] = 4,
            ["num_key_value_heads"] = 2,
            ["rms_norm_eps"] = 1e-6,
            ["tie_word_embeddings"] = true,
            ["max_position_embeddings"] = 64,
        };
        File.WriteAllText(Path.Combine(hf, "config.json"), config.ToJsonString());
        var builder = Onnx.Models.DecoderBuilder.For(Onnx.Models.ModelConfig.FromHuggingFace(config, "test"));
        var flat = Onnx.Models.Presets.Initialize(builder, 3);
        long offset = 0;
        var tensors = builder.Parameters().Select(p =>
        {
            long n = p.Shape.Aggregate(1L, (a, d) => a * d);
            var t = (p.Name, (IReadOnlyList<long>)p.Shape, (ReadOnlyMemory<float>)flat.AsMemory((int)offset, (int)n));
            offset += n;
            return t;
        }).ToList();
        Onnx.Checkpoints.SafeTensorsWriter.Write(Path.Combine(hf, "model.safetensors"), tensors);
        var package = Onnx.Export.ModelExporter.Export(new Onnx.Export.ModelSource.FromHuggingFace(hf, ByteTokenizer: true), Path.Combine(_dir, "out"), overwrite: false);
        Assert.DoesNotContain(package.Layout.Tensors, t => t.Name == "lm_head.weight");
        var result = GradientCheck.Run(package, directions: 3);
        Assert.True(result.MaxRelativeError < 1e-3, $"largest relative error {result.MaxRelativeError:E2}");
    }
}
