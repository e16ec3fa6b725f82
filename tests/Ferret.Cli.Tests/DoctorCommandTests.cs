using System.Text.Json;

namespace Ferret.Cli.Tests;

public sealed class DoctorCommandTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "ferret-doctor-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_dir))
            Directory.Delete(_dir, recursive: true);
    }

    [Fact]
    public void The_cpu_passes_its_own_check_and_reports_every_path_in_snake_case_json()
    {
        var package = Path.Combine(_dir, "tiny-gpt2");
        Assert.Equal(0, CliRunner.Run("export", "--preset", "tiny-gpt2", "--out", package).ExitCode);
        var (code, json, error) = CliRunner.Run("doctor", "--device", "cpu", "--artifacts", package, "--json", "--seq", "16", "--threads", "1");
        Assert.True(code == 0, $"doctor on the cpu exited {code}: {error}{json}");
        using var doc = JsonDocument.Parse(json);
        var root = doc.RootElement;
        Assert.True(root.GetProperty("passed").GetBoolean(), json);
        Assert.Equal("cpu", root.GetProperty("device").GetString());
        Assert.True(root.GetProperty("peak_rss_bytes").GetInt64() > 0, "peak_rss_bytes must be reported");
        Assert.Equal(JsonValueKind.Null, root.GetProperty("peak_device_bytes").ValueKind);
        var paths = root.GetProperty("paths").EnumerateArray().ToList();
        Assert.Equal(["reference", "resident"], paths.Select(p => p.GetProperty("path").GetString()));
        var resident = paths[1];
        Assert.True(resident.GetProperty("gradient_error").GetDouble() <= root.GetProperty("tolerances").GetProperty("gradient").GetDouble(),
            $"the cpu's resident path must agree with its host path: {resident}");
    }

    [Fact]
    public void A_device_that_cannot_run_fails_the_check_with_the_reason_and_exit_code_1()
    {
        var package = Path.Combine(_dir, "tiny-gpt2");
        Assert.Equal(0, CliRunner.Run("export", "--preset", "tiny-gpt2", "--out", package).ExitCode);
        var (code, json, _) = CliRunner.Run("doctor", "--device", "cuda", "--artifacts", package, "--json", "--seq", "16", "--threads", "1");
        Assert.True(code == 1, $"a device without its runtime must fail the check (exit 1), got {code}: {json}");
        using var doc = JsonDocument.Parse(json);
        Assert.False(doc.RootElement.GetProperty("passed").GetBoolean(), "the JSON says the check did not pass");
        Assert.Contains("CUDA execution provider is not available", doc.RootElement.GetProperty("failure").GetString());
        Assert.Contains("CUDA 13", doc.RootElement.GetProperty("failure").GetString());
    }

    [Theory]
    [InlineData(new[] { "doctor", "--device", "tpu" }, "Unknown device 'tpu'")]
    [InlineData(new[] { "doctor", "--seq", "2" }, "--seq must be at least 4")]
    [InlineData(new[] { "doctor", "--artifacts", "/nonexistent/package" }, "does not exist")]
    public void Bad_input_is_one_line_with_exit_code_2(string[] args, string expected)
    {
        var (code, _, error) = CliRunner.Run(args);
        Assert.True(code == 2, $"expected exit code 2, got {code}: {error}");
        Assert.Contains(expected, error);
    }
}
