using Ferret.Cli.Commands;

namespace Ferret.Cli.Tests;

public sealed class SimulateComparisonTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("ferret-cli-compare-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void A_seed_sweep_and_a_baseline_get_a_cost_to_target_table_and_a_plot_over_bytes()
    {
        var package = Path.Combine(_dir, "tiny-gpt2");
        Assert.Equal(0, CliRunner.Run("export", "--preset", "tiny-gpt2", "--out", package).ExitCode);
        Assert.Equal(0, CliRunner.Run("data", "skills", "--out", Path.Combine(_dir, "data"), "--train", "8", "--test", "4").ExitCode);
        var report = Path.Combine(_dir, "report");
        var (code, _, error) = CliRunner.Run("simulate", "--artifacts", package, "--data", Path.Combine(_dir, "data"), "--compare", "ferret,fedavg",
            "--seeds", "4,8", "--clients", "2", "--fraction", "1", "--rounds", "1", "--local-steps", "1", "--micro-batches", "1", "--local-lr", "0.01",
            "--eval-examples", "2", "--generate-examples", "1", "--threads", "1", "--plot-x", "bytes", "--report", report);
        Assert.True(code == 0, error);
        Assert.True(File.Exists(Path.Combine(report, "comparison.md")), "the report holds comparison.md");
        var output = File.ReadAllText(Path.Combine(report, "comparison.md"));
        Assert.Contains("Cost to target (eval loss <= ", output);
        foreach (var run in new[] { "| ferret K=4 |", "| ferret K=8 |", "| fedavg |" })
            Assert.True(output.Split('\n').Count(l => l.StartsWith(run, StringComparison.Ordinal)) == 2, $"'{run}' should head a row of both tables:\n{output}");
        Assert.True(new FileInfo(Path.Combine(report, "eval-loss-by-bytes.png")).Length > 1000, "the report holds the plot over bytes");
    }

    [Theory]
    [InlineData("50,100,200,400", new[] { 50, 100, 200, 400 })]
    [InlineData("200", new int[0])]
    [InlineData("ferret=200,fedkseed=4096", new int[0])]
    public void Several_plain_seed_counts_are_a_sweep(string text, int[] expected) =>
        Assert.Equal(expected, SimulateCommand.SeedSweep(text));

    [Theory]
    [InlineData("--target", "3", "--target-metric", "0.5", "give one")]
    [InlineData("--target-metric", "1.5", "--metric", "exact-match", "outside [0, 1]")]
    [InlineData("--seeds", "50,x", "--rounds", "1", "not a whole number")]
    public void Contradictory_or_impossible_targets_are_refused_with_one_line(string o1, string v1, string o2, string v2, string message)
    {
        var package = Path.Combine(_dir, "tiny-gpt2");
        Assert.Equal(0, CliRunner.Run("export", "--preset", "tiny-gpt2", "--out", package).ExitCode);
        Assert.Equal(0, CliRunner.Run("data", "skills", "--out", Path.Combine(_dir, "data"), "--train", "8", "--test", "4").ExitCode);
        var (code, _, error) = CliRunner.Run("simulate", "--artifacts", package, "--data", Path.Combine(_dir, "data"), o1, v1, o2, v2);
        Assert.True(code == 2, $"exit code 2 expected, got {code}: {error}");
        Assert.Contains(message, error);
        Assert.Single(error.Trim().Split('\n'));
    }
}
