using System.Text.Json.Nodes;
using Ferret.Onnx.Artifacts;
using Ferret.Onnx.Export;

namespace Ferret.Onnx.Tests.Artifacts;

public sealed class RecomputeExportTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    private ArtifactPackage Export(string name, RecomputeMode mode, string preset = "tiny-gpt2") =>
        ModelExporter.Export(new ModelSource.FromPreset(preset, 1), _dir.File(name), overwrite: false, options: new ExportOptions { Recompute = mode });

    [Fact]
    public void Layer_blocks_are_added_beside_an_unchanged_training_graph()
    {
        var plain = Export("plain", RecomputeMode.None);
        var layered = Export("layered", RecomputeMode.Layers);
        Assert.Null(plain.Manifest.Recompute);
        Assert.DoesNotContain("recompute", File.ReadAllText(Path.Combine(plain.Directory, ArtifactManifest.FileName)));

        // The artifact contract stays: the same train.onnx, eval.onnx and logits.onnx.
        foreach (var file in new[] { "train.onnx", "eval.onnx", "logits.onnx" })
            Assert.Equal(File.ReadAllBytes(Path.Combine(plain.Directory, file)), File.ReadAllBytes(Path.Combine(layered.Directory, file)));

        var r = layered.Manifest.Recompute!;
        Assert.Equal("layers", r.Mode);
        Assert.Equal(layered.Config.Layers, r.Layers.Count);
        Assert.Equal(12, r.LayerParameters.Count);
        Assert.Contains("attn.c_attn.weight", r.LayerParameters);
        Assert.Equal("transformer.h.3.attn.c_attn.weight", r.Layers[3][r.LayerParameters.ToList().IndexOf("attn.c_attn.weight")]);
        Assert.Equal(["hidden", "attention_bias"], r.Prologue.Outputs);
        Assert.Equal(["hidden_out"], r.LayerForward.Outputs);
        Assert.Equal(["hidden_grad", .. r.LayerParameters.Select(p => p + "_grad")], r.LayerBackward.Outputs);
        Assert.Contains("hidden_out_grad", r.LayerBackward.Inputs);
        // GPT-2 ties its head to the token table: the head and the embedding backward both give it gradient.
        Assert.Equal(["loss", "hidden_grad", "transformer.ln_f.weight_grad", "transformer.ln_f.bias_grad", "transformer.wte.weight_grad"], r.Head.Outputs);
        Assert.Equal(["transformer.wte.weight_grad", "transformer.wpe.weight_grad"], r.EmbeddingBackward.Outputs);
        // Every parameter gets its gradient from a backward block.
        var covered = r.Layers.SelectMany(l => l).Concat(r.Head.Outputs.Concat(r.EmbeddingBackward.Outputs).Where(o => o.EndsWith("_grad", StringComparison.Ordinal) && o != "hidden_grad").Select(o => o[..^5]));
        var all = layered.Layout.Tensors.Select(t => t.Name).ToHashSet(StringComparer.Ordinal);
        Assert.True(all.SetEquals(covered), $"not covered: [{string.Join(", ", all.Except(covered))}]; not parameters: [{string.Join(", ", covered.Except(all))}]");
    }

    [Fact]
    public void Llama_layers_share_the_rotary_tables_and_the_head_is_untied()
    {
        var r = Export("llama", RecomputeMode.Layers, "tiny-llama").Manifest.Recompute!;
        Assert.Equal(["hidden", "attention_bias", "rotary_cos", "rotary_sin"], r.Prologue.Outputs);
        Assert.Equal(["loss", "hidden_grad", "model.norm.weight_grad", "lm_head.weight_grad"], r.Head.Outputs);
        Assert.Equal(["model.embed_tokens.weight_grad"], r.EmbeddingBackward.Outputs);
    }

    [Theory]
    [InlineData("mode")]
    [InlineData("layer")]
    [InlineData("file")]
    public void A_damaged_recompute_table_is_refused_with_what_is_wrong(string defect)
    {
        var package = Export("damaged", RecomputeMode.Layers);
        var path = Path.Combine(package.Directory, ArtifactManifest.FileName);
        var json = JsonNode.Parse(File.ReadAllText(path))!;
        var expected = defect switch
        {
            "mode" => "recompute mode 'tensors' is unknown",
            "layer" => "recompute layer 2 names parameter 'transformer.h.9.ln_1.weight'",
            _ => "recompute graph 'layer_backward.onnx', which is missing",
        };
        switch (defect)
        {
            case "mode":
                json["recompute"]!["mode"] = "tensors";
                break;
            case "layer":
                json["recompute"]!["layers"]![2]![0] = "transformer.h.9.ln_1.weight";
                break;
            default:
                File.Delete(Path.Combine(package.Directory, "layer_backward.onnx"));
                break;
        }
        File.WriteAllText(path, json.ToJsonString());
        var e = Assert.ThrowsAny<Exception>(() => ArtifactPackage.Open(package.Directory));
        Assert.True(e is InvalidDataException or FileNotFoundException, $"{e.GetType().Name}: {e.Message}");
        Assert.Contains(expected, e.Message);
    }

    [Theory]
    [InlineData("layers", RecomputeMode.Layers)]
    [InlineData("LAYERS", RecomputeMode.Layers)]
    [InlineData(" none ", RecomputeMode.None)]
    public void Recompute_values_parse_in_any_case(string text, RecomputeMode expected) =>
        Assert.Equal(expected, ExportOptions.ParseRecompute(text));

    [Fact]
    public void An_unknown_recompute_value_names_the_choices() =>
        Assert.Equal("Unknown --recompute value 'tensors': expected none or layers.", Assert.Throws<ArgumentException>(() => ExportOptions.ParseRecompute("tensors")).Message);
}
