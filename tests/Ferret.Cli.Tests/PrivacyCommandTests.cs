using System.Text.Json;
using Ferret.Cli.Commands;
using Ferret.Core.Privacy;

namespace Ferret.Cli.Tests;

public sealed class PrivacyCommandTests
{
    [Fact]
    public void Dp_account_prints_the_accountants_epsilon_as_json()
    {
        var (code, output, _) = CliRunner.Run("dp-account", "--sampling-rate", "0.01", "--noise-multiplier", "1.1", "--rounds", "1000", "--delta", "1e-5", "--json");
        Assert.Equal(0, code);
        using var doc = JsonDocument.Parse(output);
        var root = doc.RootElement;
        Assert.Equal(RdpAccountant.Epsilon(0.01, 1.1, 1000, 1e-5).Epsilon, root.GetProperty("epsilon").GetDouble(), 12);
        Assert.Equal(1000, root.GetProperty("rounds").GetInt32());
        Assert.InRange(root.GetProperty("rdp_order").GetInt32(), 2, 256);
    }

    [Fact]
    public void Dp_account_plans_the_noise_for_a_target_epsilon()
    {
        var (code, output, _) = CliRunner.Run("dp-account", "--sampling-rate", "0.2", "--epsilon", "4", "--rounds", "6", "--json");
        Assert.Equal(0, code);
        using var doc = JsonDocument.Parse(output);
        double z = doc.RootElement.GetProperty("noise_multiplier").GetDouble();
        Assert.True(RdpAccountant.Epsilon(0.2, z, 6, 1e-5).Epsilon <= 4, $"z = {z} must reach epsilon 4");
        var (table, text, _) = CliRunner.Run("dp-account", "--sampling-rate", "0.2", "--noise-multiplier", "1.2", "--rounds", "8");
        Assert.Equal(0, table);
        Assert.Contains("after 8 rounds", text);
    }

    [Theory]
    [InlineData(new[] { "--sampling-rate", "1.5", "--noise-multiplier", "1", "--rounds", "3" }, "--sampling-rate 1.5 is outside (0, 1]")]
    [InlineData(new[] { "--sampling-rate", "0.1", "--noise-multiplier", "0", "--rounds", "3" }, "--noise-multiplier 0 must be positive")]
    [InlineData(new[] { "--sampling-rate", "0.1", "--noise-multiplier", "1", "--rounds", "0" }, "--rounds 0 must be at least 1")]
    [InlineData(new[] { "--sampling-rate", "0.1", "--noise-multiplier", "1", "--rounds", "3", "--delta", "1" }, "--delta 1 is outside (0, 1)")]
    [InlineData(new[] { "--sampling-rate", "0.1", "--rounds", "3" }, "Give exactly one of --noise-multiplier")]
    [InlineData(new[] { "--sampling-rate", "0.1", "--rounds", "3", "--noise-multiplier", "1", "--epsilon", "2" }, "Give exactly one of --noise-multiplier")]
    public void Dp_account_refuses_bad_input_with_one_line(string[] args, string expected)
    {
        var (code, _, error) = CliRunner.Run(["dp-account", .. args]);
        Assert.Equal(2, code);
        Assert.Contains(expected, error);
        Assert.Single(error.Trim().Split('\n'));
    }

    [Fact]
    public void Compare_entries_name_their_privacy()
    {
        Assert.Equal(("ferret", false, false, (double?)null), PrivacyOptions.ParseEntry("ferret"));
        Assert.Equal(("ferret", true, true, (double?)4), PrivacyOptions.ParseEntry("ferret+secagg+dp@4"));
        Assert.Equal(("ferret", false, true, (double?)null), PrivacyOptions.ParseEntry("ferret+dp"));
        Assert.Contains("unknown part '+tee'", Assert.Throws<ArgumentException>(() => PrivacyOptions.ParseEntry("ferret+tee")).Message);
        Assert.Contains("epsilon 'x'", Assert.Throws<ArgumentException>(() => PrivacyOptions.ParseEntry("ferret+dp@x")).Message);
    }

    [Theory]
    [InlineData(new[] { "--dp-noise", "1" }, "needs --dp-clip")]
    [InlineData(new[] { "--dp-noise", "1", "--dp-clip", "5", "--dp-mode", "distributed" }, "Distributed noise needs secure aggregation")]
    [InlineData(new[] { "--secure-aggregation", "--threshold", "9" }, "--threshold 9 exceeds the 2 clients of a round")]
    [InlineData(new[] { "--compare", "ferret,ferret+dp@0" }, "is not a positive number")]
    public void Simulate_refuses_privacy_it_cannot_run_with_one_line(string[] args, string expected)
    {
        var (code, _, error) = CliRunner.Run(["simulate", "--artifacts", "/nonexistent-but-unused", "--data", "unused", "--clients", "4", "--fraction", "0.5", .. args]);
        Assert.Equal(2, code);
        Assert.Contains(expected, error);
    }
}
