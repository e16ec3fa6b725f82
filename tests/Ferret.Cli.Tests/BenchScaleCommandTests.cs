using System.Text.Json;
using Ferret.Cli.Tests.EndToEnd;
using Ferret.Tests;

namespace Ferret.Cli.Tests;

[Collection(SharedMachine.Name)]
public sealed class BenchScaleCommandTests
{
    [SkippableFact]
    public void Two_instances_and_a_few_simulated_clients_complete_every_round_and_report_in_snake_case()
    {
        var postgres = TestServices.NewPostgresDatabase();
        var redis = TestServices.Redis("bench-" + Guid.NewGuid().ToString("N")[..8]);
        var (code, output, error) = CliRunner.Run("bench", "scale", "--coordinators", "2", "--clients", "6", "--rounds", "2",
            "--postgres", postgres, "--redis", redis, "--json");
        Assert.True(code == 0, $"bench scale should succeed: {error} {output}");
        var line = output.Split('\n').Single(l => l.TrimStart().StartsWith('{'));
        var report = JsonDocument.Parse(line).RootElement;
        Assert.Equal(2, report.GetProperty("rounds_completed").GetInt32());
        Assert.True(report.GetProperty("fingerprints_agree").GetBoolean(), $"every client should hold the log's model: {line}");
        Assert.Equal(0, report.GetProperty("packets_rejected").GetInt64());
        foreach (var key in new[] { "round_close_p50_ms", "round_close_p99_ms", "bytes_per_connection", "rounds_per_minute" })
            Assert.True(report.GetProperty(key).GetDouble() is > 0 and < double.MaxValue, $"{key} should be a positive figure: {line}");
        Assert.True(report.GetProperty("round_close_p99_ms").GetDouble() >= report.GetProperty("round_close_p50_ms").GetDouble(), line);
        Assert.Equal(64, report.GetProperty("model_fingerprint").GetString()!.Length);
    }

    [Theory]
    [InlineData("--coordinators", "0", "--coordinators 0")]
    [InlineData("--clients", "0", "--clients 0")]
    [InlineData("--rounds", "5000", "--rounds 5000")]
    [InlineData("--postgres", "/tmp/rounds.db", "not a PostgreSQL connection string")]
    public void Bad_options_get_one_line_and_exit_code_2(string option, string value, string expected)
    {
        var (code, _, error) = CliRunner.Run("bench", "scale", option, value);
        Assert.Equal(2, code);
        Assert.Contains(expected, error);
        Assert.Single(error.Trim().Split('\n'));
    }
}
