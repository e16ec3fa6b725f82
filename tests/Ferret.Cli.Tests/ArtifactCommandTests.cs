using System.Text.Json;

namespace Ferret.Cli.Tests;

public sealed class ArtifactCommandTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "ferret-cli-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_dir))
            Directory.Delete(_dir, recursive: true);
    }

    [Fact]
    public void Export_then_inspect_then_gradcheck_a_preset()
    {
        var output = Path.Combine(_dir, "tiny-gpt2");
        var (code, _, error) = CliRunner.Run("export", "--preset", "tiny-gpt2", "--out", output);
        Assert.True(code == 0, error);
        (code, var json, error) = CliRunner.Run("inspect", "--artifacts", output, "--json", "--verify");
        Assert.True(code == 0, error);
        using (var doc = JsonDocument.Parse(json))
        {
            Assert.Equal("gpt2", doc.RootElement.GetProperty("family").GetString());
            Assert.Equal("ok", doc.RootElement.GetProperty("verified").GetString());
            Assert.True(doc.RootElement.GetProperty("parameters").GetInt64() > 500_000, "expected doc.RootElement.GetProperty(\"parameters\").GetInt64() > 500_000");
        }
        (code, json, error) = CliRunner.Run("gradcheck", "--artifacts", output, "--json", "--directions", "2");
        Assert.True(code == 0, error);
        using (var doc = JsonDocument.Parse(json))
            Assert.True(doc.RootElement.GetProperty("max_relative_error").GetDouble() < 1e-2, "expected doc.RootElement.GetProperty(\"max_relative_error\").GetDouble() < 1e-2");
    }

    [Fact]
    public void Export_with_layer_recompute_lists_the_block_graphs()
    {
        var output = Path.Combine(_dir, "tiny-gpt2-recompute");
        var (code, _, error) = CliRunner.Run("export", "--preset", "tiny-gpt2", "--out", output, "--recompute", "Layers");
        Assert.True(code == 0, error);
        (code, var json, error) = CliRunner.Run("inspect", "--artifacts", output, "--json");
        Assert.True(code == 0, error);
        using var doc = JsonDocument.Parse(json);
        Assert.Equal("layers", doc.RootElement.GetProperty("recompute").GetString());
        var files = doc.RootElement.GetProperty("graphs").EnumerateArray().Select(g => g.GetProperty("file").GetString()).ToList();
        Assert.Equal(["train.onnx", "eval.onnx", "logits.onnx", "prologue.onnx", "layer_forward.onnx", "layer_backward.onnx", "head.onnx", "embedding_backward.onnx"], files);
    }

    [Theory]
    [InlineData(new[] { "export", "--preset", "tiny-gpt2", "--out", "X", "--recompute", "sideways" }, "--recompute: 'sideways' is not one of none, layers.")]
    [InlineData(new[] { "export", "--preset", "tiny-gpt2", "--out", "X", "--precision", "fp8" }, "--precision: 'fp8' is not one of fp32, bf16-mixed.")]
    [InlineData(new[] { "export", "--out", "X" }, "exactly one of --preset")]
    [InlineData(new[] { "export", "--preset", "huge-llama", "--out", "X" }, "Unknown preset 'huge-llama'")]
    [InlineData(new[] { "export", "--hf", "/nonexistent/model", "--out", "X" }, "does not exist")]
    [InlineData(new[] { "inspect", "--artifacts", "/nonexistent/package" }, "does not exist")]
    [InlineData(new[] { "gradcheck", "--artifacts", "/nonexistent/package" }, "does not exist")]
    [InlineData(new[] { "bench", "train", "--artifacts", "/nonexistent/package" }, "does not exist")]
    public void Bad_input_gets_one_clear_line_and_exit_code_2(string[] args, string expected)
    {
        var resolved = args.Select(a => a == "X" ? Path.Combine(_dir, "out") : a).ToArray();
        var (code, _, error) = CliRunner.Run(resolved);
        Assert.Equal(2, code);
        Assert.Contains(expected, error);
        Assert.False(Directory.Exists(Path.Combine(_dir, "out")), "expected false: Directory.Exists(Path.Combine(_dir, \"out\"))");
    }
}
