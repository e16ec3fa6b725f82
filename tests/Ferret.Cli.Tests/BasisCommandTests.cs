namespace Ferret.Cli.Tests;

public class BasisCommandTests
{
    [Fact]
    public void Basis_reproduces_the_example_of_the_spec()
    {
        var (code, output, _) = CliRunner.Run("basis", "--seed", "42", "--block", "0", "--length", "1000", "--index", "0,1,2,3");
        Assert.Equal(0, code);
        var lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(
            ["0 3bea19fb 0.00714421039", "1 bb023455 -0.00198676181", "2 bcdd1ca3 -0.0269911941", "3 bc24e6d5 -0.0100648003"],
            lines);
    }

    [Fact]
    public void Basis_accepts_hex_seeds_ranges_and_rademacher()
    {
        var (code, output, _) = CliRunner.Run("basis", "--seed", "0x2a", "--length", "1000", "--index", "2-3", "--dist", "rademacher");
        Assert.Equal(0, code);
        var lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(2, lines.Length);
        Assert.All(lines, l => Assert.Contains(l.Split(' ')[1], new[] { "3d0186e2", "bd0186e2" }));
    }

    [Theory]
    [InlineData("--seed", "-1", "--seed")]
    [InlineData("--length", "0", "--length")]
    [InlineData("--index", "1000", "outside the block")]
    [InlineData("--index", "5-2", "must ascend")]
    [InlineData("--index", "x", "--index 'x'")]
    public void Bad_arguments_name_the_option(string option, string value, string expected)
    {
        var args = new Dictionary<string, string> { ["--seed"] = "1", ["--length"] = "1000", ["--index"] = "0" };
        args[option] = value;
        var (code, _, error) = CliRunner.Run(["basis", .. args.SelectMany(kv => new[] { kv.Key, kv.Value })]);
        Assert.Equal(2, code);
        Assert.Contains(expected, error);
    }

    [Fact]
    public void Bench_projection_reports_both_rates_as_json()
    {
        var (code, output, _) = CliRunner.Run("bench", "projection", "--length", "65536", "--seeds", "4", "--repeat", "1", "--json");
        Assert.Equal(0, code);
        using var doc = System.Text.Json.JsonDocument.Parse(output);
        Assert.True(doc.RootElement.GetProperty("project_elements_per_s").GetDouble() > 0, "expected doc.RootElement.GetProperty(\"project_elements_per_s\").GetDouble() > 0");
        Assert.True(doc.RootElement.GetProperty("apply_elements_per_s").GetDouble() > 0, "expected doc.RootElement.GetProperty(\"apply_elements_per_s\").GetDouble() > 0");
    }
}
