using System.Text.Json;
using Ferret.Core.Parameters;
using Ferret.Onnx.Artifacts;
using Ferret.Onnx.Checkpoints;
using Ferret.Onnx.Export;
using Ferret.Training.Evaluation;
using Ferret.Training.Runtime;
using Ferret.Training.Tokenization;

namespace Ferret.Training.Tests.Reference;

/// <summary>
/// The tuned model as a Hugging Face folder (what <c>ferret model</c>, <c>ferret-edge --save-model</c>, the demo and
/// the coordinator's model endpoint write): it reads back bit for bit through the Hugging Face import, its tokenizer
/// files encode like the byte tokenizer, and an independent PyTorch implementation reading only config.json and
/// model.safetensors gives the logits ONNX Runtime gives on a batch.
/// </summary>
public sealed class TunedModelFolderTests(ArtifactFixture artifacts) : IClassFixture<ArtifactFixture>, IDisposable
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "ferret-tuned-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_root))
            Directory.Delete(_root, recursive: true);
    }

    /// <summary>The preset's parameters moved off their initial values, so a test cannot pass on the starting model.</summary>
    private (ArtifactPackage Start, float[] Tuned, SavedModel Saved) Save(string preset)
    {
        var start = artifacts.Get(preset);
        var tuned = start.LoadParameters();
        var random = new Random(7);
        for (int i = 0; i < tuned.Length; i++)
            tuned[i] += (float)((random.NextDouble() - 0.5) * 0.02);
        var saved = TunedModel.Save(start, tuned, Path.Combine(_root, preset + "-hf"), Path.Combine(_root, preset + "-package"), overwrite: false,
            new Dictionary<string, string> { ["ferret_experiment"] = "exp-test", ["ferret_round"] = "3" });
        return (start, tuned, saved);
    }

    [Theory]
    [InlineData("tiny-llama")]
    [InlineData("tiny-gpt2")]
    public void The_folder_and_the_new_package_hold_the_tuned_parameters_bit_for_bit(string preset)
    {
        var (start, tuned, saved) = Save(preset);
        string fingerprint = ModelFingerprint.Compute(tuned);
        Assert.True(saved.Fingerprint == fingerprint, $"saved fingerprint {saved.Fingerprint} vs the tuned parameters' {fingerprint}");
        foreach (var file in new[] { "config.json", "model.safetensors", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json" })
            Assert.True(File.Exists(Path.Combine(saved.HuggingFaceDirectory, file)), $"{file} is in {saved.HuggingFaceDirectory}");
        Assert.True(Directory.GetDirectories(_root, ".*").Length == 0, "no staging folder is left beside the outputs");

        var package = ArtifactPackage.Open(saved.PackageDirectory!);
        Assert.True(package.Manifest.ParametersSha256 == fingerprint, "the new package's manifest carries the tuned fingerprint");
        Assert.True(ModelFingerprint.Compute(package.LoadParameters(verify: true)) == fingerprint, "the new package's parameters are the tuned ones");
        Assert.True(package.Manifest.Train.File == start.Manifest.Train.File && File.ReadAllBytes(package.TrainGraphPath).SequenceEqual(File.ReadAllBytes(start.TrainGraphPath)), "the new package keeps the original graphs");

        // The folder is a Hugging Face model: the importer (config.json field names, safetensors names and shapes) takes it back exactly.
        var reimported = ModelExporter.Export(new ModelSource.FromHuggingFace(saved.HuggingFaceDirectory, ByteTokenizer: false), Path.Combine(_root, preset + "-reimported"), overwrite: false);
        Assert.True(reimported.Manifest.ParametersSha256 == fingerprint, $"re-imported fingerprint {reimported.Manifest.ParametersSha256} vs {fingerprint}");
        Assert.True(reimported.Config with { InitializerRange = 0 } == start.Config with { InitializerRange = 0 }, $"config.json reads back as {reimported.Config}, not {start.Config}");
        using (var weights = SafeTensorsReader.Open(Path.Combine(saved.HuggingFaceDirectory, "model.safetensors")))
        {
            Assert.True(weights.Metadata.GetValueOrDefault("ferret_fingerprint") == fingerprint, "model.safetensors records the fingerprint");
            Assert.True(weights.Metadata.GetValueOrDefault("ferret_experiment") == "exp-test", "model.safetensors records where the model came from");
            Assert.True(weights.Metadata.GetValueOrDefault("format") == "pt", "transformers loads safetensors marked format=pt");
        }

        // The byte tokenizer written as tokenizer.json encodes text to the byte ids, specials included.
        var written = HuggingFaceTokenizer.Load(Path.Combine(saved.HuggingFaceDirectory, "tokenizer.json"), start.Config.VocabSize, 256, 257, 258);
        var bytes = Tokenizers.FromPackage(start);
        foreach (var text in new[] { "Hello, world!", "Sort: 3 1 2 -> 1 2 3", "naïve façade ✓ 日本", "  two  spaces\nand a line" })
        {
            Assert.True(written.Encode(text).SequenceEqual(bytes.Encode(text)), $"tokenizer.json encodes '{text}' as [{string.Join(",", written.Encode(text))}], the byte tokenizer as [{string.Join(",", bytes.Encode(text))}]");
            Assert.True(written.Decode(written.Encode(text)) == text, $"tokenizer.json decodes '{text}' back");
        }
        using var config = JsonDocument.Parse(File.ReadAllText(Path.Combine(saved.HuggingFaceDirectory, "tokenizer_config.json")));
        Assert.True(config.RootElement.GetProperty("eos_token").GetString() == ByteTokenizerFiles.Eos, "tokenizer_config.json names the EOS token");
    }

    [Fact]
    public void An_existing_folder_is_refused_without_overwrite_and_nothing_is_half_written()
    {
        var (start, tuned, saved) = Save("tiny-gpt2");
        var error = Assert.Throws<IOException>(() => TunedModel.Save(start, tuned, saved.HuggingFaceDirectory, null, overwrite: false));
        Assert.Contains("--overwrite", error.Message, StringComparison.Ordinal);
        // A failure after the folder was staged (the package target is a file) leaves neither output behind.
        var blocked = Path.Combine(_root, "blocked");
        File.WriteAllText(blocked, "a file where the package should go");
        Assert.Throws<IOException>(() => TunedModel.Save(start, tuned, Path.Combine(_root, "never-hf"), blocked, overwrite: false));
        Assert.False(Directory.Exists(Path.Combine(_root, "never-hf")), "the Hugging Face folder is not committed when the package fails");
        Assert.True(Directory.GetDirectories(_root, ".*").Length == 0, "no staging folder is left behind");
    }

    [Theory]
    [InlineData("tiny-llama")]
    [InlineData("tiny-gpt2")]
    public void PyTorch_reading_the_folder_gives_the_logits_onnx_runtime_gives_when_torch_is_installed(string preset)
    {
        if (!PythonReference.Available)
            return; // Needs Debian's python3-torch, like the live gradient reference.
        var (start, tuned, saved) = Save(preset);
        var batchPath = Path.Combine(AppContext.BaseDirectory, "Fixtures", "reference-batch.json");
        using var batch = JsonDocument.Parse(File.ReadAllText(batchPath));
        long[] Flat(string key) => batch.RootElement.GetProperty(key).EnumerateArray().SelectMany(r => r.EnumerateArray().Select(v => v.GetInt64())).ToArray();
        int rows = batch.RootElement.GetProperty("input_ids").GetArrayLength();
        var ids = Flat("input_ids");
        var mask = Flat("attention_mask");
        int seq = ids.Length / rows;
        using var generator = new GreedyGenerator(start.Layout, start.LogitsGraphPath, tuned, start.Config.VocabSize, new SessionSettings { IntraOpThreads = 1 });
        var ours = generator.Logits(ids, mask, rows, seq);

        using var reference = JsonDocument.Parse(PythonReference.Run("--hf", saved.HuggingFaceDirectory, batchPath, Path.Combine(_root, preset + "-logits.json")));
        var shape = reference.RootElement.GetProperty("shape").EnumerateArray().Select(v => v.GetInt32()).ToArray();
        Assert.True(shape.SequenceEqual([rows, seq, start.Config.VocabSize]), $"PyTorch logits shape [{string.Join(", ", shape)}]");
        var theirs = reference.RootElement.GetProperty("logits").EnumerateArray().Select(v => v.GetDouble()).ToArray();
        double scale = theirs.Max(Math.Abs);
        for (int r = 0; r < rows; r++)
        {
            for (int t = 0; t < seq; t++)
            {
                if (mask[(r * seq) + t] == 0)
                    continue; // padded positions are not defined the same way by both
                for (int v = 0; v < start.Config.VocabSize; v++)
                {
                    int i = (((r * seq) + t) * start.Config.VocabSize) + v;
                    Assert.True(Math.Abs(ours[i] - theirs[i]) <= (1e-4 * scale) + 1e-5, $"{preset} logits[{r},{t},{v}]: ONNX Runtime {ours[i]:G9}, PyTorch {theirs[i]:G9}");
                }
            }
        }
    }
}
