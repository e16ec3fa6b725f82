using System.Text.Json;

namespace Ferret.Cli.Tests.EndToEnd;

/// <summary>
/// CI-sized runs of the reliability harnesses (the README has the full-size figures): each starts a real
/// coordinator process and must meet its target at this size, and its <c>--json</c> carries the keys the
/// issue fixes.
/// </summary>
[Collection(SharedMachine.Name)]
public sealed class HarnessTests
{
    private static JsonElement RunJson(params string[] args)
    {
        var (code, output, error) = CliRunner.Run(args);
        Assert.True(code == 0, $"ferret {string.Join(' ', args)} exited {code}: {output} {error}");
        return JsonDocument.Parse(output).RootElement.Clone();
    }

    private static void HasKeys(JsonElement json, params string[] keys)
    {
        foreach (var key in keys)
            Assert.True(json.TryGetProperty(key, out _), $"--json lacks '{key}': {json}");
    }

    [Fact]
    public void Chaos_kills_the_coordinator_inside_the_aggregation_transaction_and_at_random_and_loses_nothing()
    {
        var json = RunJson("bench", "chaos", "--kills", "2", "--clients", "2", "--rounds", "3", "--json");
        HasKeys(json, "kills", "rounds_completed", "rounds_lost", "rounds_redone", "fingerprints_agree", "integrity_ok", "recovery_p99_ms");
        Assert.Equal(2, json.GetProperty("kills").GetInt32());
        Assert.Equal(0, json.GetProperty("rounds_lost").GetInt32());
        Assert.Equal(0, json.GetProperty("rounds_redone").GetInt32());
        Assert.True(json.GetProperty("fingerprints_agree").GetBoolean(), json.ToString());
        Assert.True(json.GetProperty("integrity_ok").GetBoolean(), json.ToString());
        Assert.True(json.GetProperty("rounds_completed").GetInt32() > 0, json.ToString());
        Assert.Equal(1, json.GetProperty("kills_by_moment").GetProperty("aggregation-transaction").GetInt32());
    }

    [Fact]
    public void Fuzz_sends_a_thousand_mutated_packets_accepts_no_invalid_one_crashes_nothing_and_the_rounds_finish()
    {
        var json = RunJson("bench", "fuzz", "--packets", "1000", "--seed", "7", "--json");
        HasKeys(json, "packets", "crashes", "invalid_accepted", "rounds_completed_after", "rss_growth_bytes");
        Assert.True(json.GetProperty("packets").GetInt32() >= 1000, json.ToString());
        Assert.Equal(0, json.GetProperty("crashes").GetInt32());
        Assert.Equal(0, json.GetProperty("invalid_accepted").GetInt32());
        Assert.Equal(8, json.GetProperty("rounds_completed_after").GetInt32());
        Assert.Equal(0, json.GetProperty("other_drops").GetInt32());
        Assert.True(json.GetProperty("valid_accepted").GetInt32() >= 2, "the oracle and the door must agree on valid packets: " + json);
        // Rejections are written at a bounded rate, not one row per bad packet.
        Assert.True(json.GetProperty("rejection_rows").GetInt64() < 200, json.ToString());
    }

    [Fact]
    public void Load_runs_rounds_with_lightweight_clients_and_reports_latency_and_memory_per_connection()
    {
        var json = RunJson("bench", "load", "--clients", "12", "--rounds", "2", "--json");
        HasKeys(json, "clients", "rounds_completed", "round_close_p50_ms", "round_close_p99_ms", "bytes_per_connection");
        Assert.Equal(12, json.GetProperty("clients").GetInt32());
        Assert.Equal(2, json.GetProperty("rounds_completed").GetInt32());
        Assert.Equal(24, json.GetProperty("packets_accepted").GetInt32());
        Assert.True(json.GetProperty("round_close_p99_ms").GetDouble() >= json.GetProperty("round_close_p50_ms").GetDouble(), "p99 of round close is at least its p50");
    }

    [Fact]
    public void Bad_harness_options_get_one_line_and_exit_code_2()
    {
        foreach (var args in new[] { new[] { "bench", "chaos", "--clients", "0" }, ["bench", "fuzz", "--packets", "1"], ["bench", "load", "--clients", "-3"] })
        {
            var (code, _, error) = CliRunner.Run(args);
            Assert.Equal(2, code);
            Assert.Single(error.Trim().Split('\n'));
        }
    }
}
