namespace Ferret.Cli.Tests;

public sealed class DataAndTrainingCommandTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "ferret-cli-data-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_dir))
            Directory.Delete(_dir, recursive: true);
    }

    [Fact]
    public void Data_synth_writes_train_and_test_files()
    {
        var (code, _, error) = CliRunner.Run("data", "synth", "--out", _dir, "--train", "80", "--test", "16", "--tasks", "reverse,add");
        Assert.True(code == 0, error);
        Assert.Equal(80, File.ReadAllLines(Path.Combine(_dir, "train.jsonl")).Length);
        Assert.Equal(16, File.ReadAllLines(Path.Combine(_dir, "test.jsonl")).Length);
        Assert.All(File.ReadAllLines(Path.Combine(_dir, "train.jsonl")), l => Assert.Contains("\"category\":", l));
    }

    [Fact]
    public void Train_fine_tunes_a_preset_and_saves_a_package_with_a_new_fingerprint()
    {
        var package = Path.Combine(_dir, "tiny-gpt2");
        Assert.Equal(0, CliRunner.Run("export", "--preset", "tiny-gpt2", "--out", package).ExitCode);
        Assert.Equal(0, CliRunner.Run("data", "synth", "--out", Path.Combine(_dir, "data"), "--train", "40", "--test", "8").ExitCode);
        var tuned = Path.Combine(_dir, "tuned");
        var (code, _, error) = CliRunner.Run("train", "--artifacts", package, "--data", Path.Combine(_dir, "data"), "--out", tuned, "--steps", "6", "--batch", "2", "--eval-every", "3");
        Assert.True(code == 0, error);
        var before = Onnx.Artifacts.ArtifactPackage.Open(package);
        var after = Onnx.Artifacts.ArtifactPackage.Open(tuned);
        Assert.NotEqual(before.Manifest.ParametersSha256, after.Manifest.ParametersSha256);
        Assert.Equal(after.Manifest.ParametersSha256, Core.Parameters.ModelFingerprint.Compute(after.LoadParameters()));
    }

    [Theory]
    [InlineData(new[] { "data", "synth", "--out", "D", "--tasks", "juggle" }, "unknown task 'juggle'")]
    [InlineData(new[] { "simulate", "--artifacts", "/nonexistent", "--data", "D" }, "does not exist")]
    [InlineData(new[] { "train", "--artifacts", "/nonexistent", "--data", "D", "--out", "D" }, "does not exist")]
    public void Bad_input_is_one_clear_line(string[] args, string expected)
    {
        var (code, _, error) = CliRunner.Run(args.Select(a => a == "D" ? _dir : a).ToArray());
        Assert.Equal(2, code);
        Assert.Contains(expected, error);
    }
}
