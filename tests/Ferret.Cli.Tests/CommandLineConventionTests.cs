using System.Text.Json;

namespace Ferret.Cli.Tests;

/// <summary>
/// The conventions every ferret command keeps: choices case-insensitive and listed in lower case, every error one
/// line on stderr with exit code 2 and nothing started before it, --artifacts always a package, no silent
/// overwrite, output not wrapped off a terminal, files only where the user asked.
/// </summary>
public sealed class CommandLineConventionTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("ferret-cli-conventions-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string Package()
    {
        var package = Path.Combine(_dir, "a folder with a rather long name so that a wrapped line would split it", "tiny-gpt2");
        var (code, _, error) = CliRunner.Run("export", "--preset", "tiny-gpt2", "--out", package);
        Assert.True(code == 0, error);
        return package;
    }

    private static void OneLineAndExit2((int ExitCode, string Output, string Error) run, string expected)
    {
        Assert.True(run.ExitCode == 2, $"exit code {run.ExitCode}, expected 2; stderr: {run.Error}");
        var lines = run.Error.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.True(lines.Length == 1, $"one line on stderr, got {lines.Length}: {run.Error}");
        Assert.True(lines[0].Contains(expected, StringComparison.Ordinal), $"stderr names '{expected}': {run.Error}");
        Assert.True(run.Output.Length == 0, $"nothing on stdout (no help page, no banner): {run.Output}");
    }

    [Theory]
    [InlineData(new[] { "simulate", "--artifacts", "P", "--data", "P", "--algorithm", "fedprox" }, "--algorithm: 'fedprox' is not one of ferret, fedkseed, fedzo, fedavg")]
    [InlineData(new[] { "export", "--preset", "tiny-gpt2", "--out", "X", "--tokenizer", "sentencepiece" }, "--tokenizer: 'sentencepiece' is not one of auto, byte")]
    [InlineData(new[] { "simulate", "--artifacts", "P", "--data", "P", "--format", "csv" }, "--format: 'csv' is not one of auto, alpaca")]
    [InlineData(new[] { "demo", "--no-such-option" }, "--no-such-option")]
    [InlineData(new[] { "simulate", "--artifacts", "P", "--data", "P", "--clients", "-1" }, "--clients must be at least 1 (got -1)")]
    [InlineData(new[] { "simulate", "--artifacts", "P", "--data", "P", "--compare", "ferret,fedavg", "--algorithm", "fedzo" }, "not both")]
    [InlineData(new[] { "train", "--artifacts", "P", "--data", "P", "--out", "X", "--clip", "-2" }, "--clip must be 0 (off) or a positive norm (got -2)")]
    [InlineData(new[] { "generate", "--artifacts", "P" }, "Nothing to answer")]
    [InlineData(new[] { "model", "--experiment", "e", "--out", "X" }, "exactly one of --coordinator URL or --round-log FILE")]
    [InlineData(new[] { "bench", "train", "--artifacts", "P", "--device", "tpu" }, "Unknown device 'tpu'")]
    [InlineData(new string[0], "name a command")]
    public void Every_error_is_one_line_on_stderr_with_exit_code_2_before_anything_starts(string[] args, string expected)
    {
        var dir = Path.Combine(_dir, "x");
        OneLineAndExit2(CliRunner.Run(args.Select(a => a switch { "P" => _dir, "X" => dir, _ => a }).ToArray()), expected);
        Assert.True(!Directory.Exists(dir), "nothing was written");
    }

    [Fact]
    public void A_bad_hyper_parameter_is_named_by_its_option_before_the_data_is_read()
    {
        var package = Package();
        OneLineAndExit2(CliRunner.Run("simulate", "--artifacts", package, "--data", Path.Combine(_dir, "no-data-yet"), "--compare", "ferret,fedzo", "--local-lr", "ferret=0.05,fedzo=-1"),
            "--local-lr for fedzo = -1 is invalid");
    }

    [Fact]
    public void Choices_are_case_insensitive_and_listed_in_lower_case()
    {
        var (code, output, error) = CliRunner.Run("basis", "--seed", "1", "--block", "0", "--length", "8", "--index", "0", "--dist", "RADEMACHER");
        Assert.True(code == 0, $"--dist RADEMACHER is rademacher: {error}");
        Assert.True(output.Contains("0.353553", StringComparison.Ordinal), $"a Rademacher element of a length-8 block is +-1/sqrt(8): {output}");
        var help = CliRunner.Run("simulate", "--help").Output;
        foreach (var listed in new[] { "ferret|fedkseed|fedzo|fedavg", "auto|alpaca|codealpaca|dolly|naturalinstructions|gsm8k", "iid|dirichlet|category" })
            Assert.True(help.Contains(listed, StringComparison.Ordinal), $"help lists {listed}: {help}");
    }

    [Fact]
    public void Artifacts_is_always_a_package_folder_and_output_is_not_wrapped_off_a_terminal()
    {
        var package = Package();
        var (code, output, error) = CliRunner.Run("inspect", "--artifacts", package);
        Assert.True(code == 0, error);
        var fingerprint = Onnx.Artifacts.ArtifactPackage.Open(package).Manifest.ParametersSha256;
        var lines = output.Split('\n');
        Assert.True(lines.Any(l => l.Contains(package, StringComparison.Ordinal)), $"the {package.Length}-character path is on one line:\n{output}");
        Assert.True(lines.Any(l => l.Contains(fingerprint, StringComparison.Ordinal)), $"the 64-hex fingerprint is on one line:\n{output}");
        Assert.True(!output.Contains('\u001b', StringComparison.Ordinal), "no terminal escape codes in captured output");
        // A folder that is not a package is named as such, wherever --artifacts appears.
        OneLineAndExit2(CliRunner.Run("gradcheck", "--artifacts", _dir), "not an artifact package");
    }

    [Theory]
    [InlineData("synth", "--train")]
    [InlineData("skills", "--train")]
    [InlineData("corpus", "--documents")]
    public void Every_data_command_refuses_to_overwrite_without_the_option(string kind, string count)
    {
        var data = Path.Combine(_dir, kind);
        Assert.True(CliRunner.Run("data", kind, "--out", data, count, "10", "--test", "2").ExitCode == 0, "the first write");
        var before = File.ReadAllText(Path.Combine(data, "train.jsonl"));
        OneLineAndExit2(CliRunner.Run("data", kind, "--out", data, count, "12", "--test", "2", "--seed", "9"), "pass --overwrite");
        Assert.True(File.ReadAllText(Path.Combine(data, "train.jsonl")) == before, "the refused run changed nothing");
        Assert.True(CliRunner.Run("data", kind, "--out", data, count, "12", "--test", "2", "--overwrite").ExitCode == 0, "--overwrite replaces");
        Assert.True(File.ReadAllLines(Path.Combine(data, "train.jsonl")).Length == 12, "with the new examples");
    }

    [Fact]
    public void A_profile_goes_where_it_was_asked_and_the_command_says_where()
    {
        var package = Package();
        var profile = Path.Combine(_dir, "profiles", "train.json");
        var strays = Directory.GetFiles(Environment.CurrentDirectory, "onnxruntime_profile_*").Length;
        var (code, output, error) = CliRunner.Run("bench", "train", "--artifacts", package, "--steps", "2", "--warmup", "1", "--seq", "16", "--profile", profile);
        Assert.True(code == 0, error);
        Assert.True(File.Exists(profile) && new FileInfo(profile).Length > 0, $"the profile is at {profile}");
        Assert.True(output.Contains($"profile written to {profile}", StringComparison.Ordinal), $"and the output says so: {output}");
        Assert.True(Directory.GetFiles(Environment.CurrentDirectory, "onnxruntime_profile_*").Length == strays, "nothing was left in the current folder");
        using var trace = JsonDocument.Parse(File.ReadAllText(profile));
        Assert.True(trace.RootElement.ValueKind == JsonValueKind.Array, "a chrome-trace event array");
    }

    [Fact]
    public void Generate_answers_prompts_from_the_command_line_and_a_file_reproducibly()
    {
        var package = Package();
        var prompts = Path.Combine(_dir, "prompts.txt");
        File.WriteAllLines(prompts, ["Reverse the letters: abc", "", "Sort: 3 1 2"]);
        string[] args = ["generate", "--artifacts", package, "--prompt", "Upper-case: hello", "--prompts-file", prompts, "--max-new-tokens", "6", "--temperature", "0.9", "--seed", "5", "--json"];
        var first = CliRunner.Run(args);
        Assert.True(first.ExitCode == 0, first.Error);
        var answers = first.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        Assert.True(answers.Count == 3, $"three prompts (the blank line skipped), {answers.Count} answers: {first.Output}");
        Assert.True(answers[1].GetProperty("prompt").GetString() == "Reverse the letters: abc", $"in order: {first.Output}");
        Assert.True(CliRunner.Run(args).Output == first.Output, "the same seed samples the same answers");
    }
}
