namespace Ferret.EdgeClient.Tests;

/// <summary>The edge client's fault-injection variable: a value that is not a round is named (the kill itself: the dashboard's browser test).</summary>
public sealed class KillSwitchTests
{
    [Theory]
    [InlineData("0")]
    [InlineData("-1")]
    [InlineData("two")]
    [InlineData("1.5")]
    public void A_value_that_is_not_a_round_number_is_refused_by_name(string value)
    {
        var e = Assert.Throws<ArgumentException>(() => KillSwitch.Arm(value));
        Assert.True(e.Message.Contains($"FERRET_EDGE_KILL_AT_ROUND='{value}'", StringComparison.Ordinal), $"the error names the variable and its value: {e.Message}");
    }
}
