using Ferret.Coordinator.Persistence;
using Ferret.Coordinator.ScaleOut;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace Ferret.Coordinator.Tests.Persistence;

public sealed class RoundLogStorageTests
{
    [Theory]
    [InlineData("Host=db;Database=ferret;Username=ferret", true)]
    [InlineData("Database=ferret; host=127.0.0.1; Port=5433", true)]
    [InlineData("Server=db;Database=ferret", true)]
    [InlineData("ferret-coordinator.db", false)]
    [InlineData("/var/lib/ferret/rounds.db", false)]
    [InlineData("data/Host=weird.db", false)]
    public void A_connection_string_naming_a_host_is_PostgreSQL_and_anything_else_a_SQLite_path(string setting, bool postgres) =>
        Assert.Equal(postgres, RoundLogStorage.IsPostgres(setting));

    [Fact]
    public void DatabasePath_is_the_round_log_until_RoundLog_is_set()
    {
        var options = new CoordinatorOptions { DatabasePath = "a.db" };
        Assert.Equal("a.db", options.RoundLogSetting);
        options.RoundLog = "Host=db";
        Assert.Equal("Host=db", options.RoundLogSetting);
    }

    [Fact]
    public void Redis_without_the_PostgreSQL_round_log_is_refused_with_the_reason()
    {
        var services = new ServiceCollection();
        var e = Assert.Throws<OptionsValidationException>(() =>
            services.AddScaleOut(services.AddSignalR(), new CoordinatorOptions { DatabasePath = "a.db", Redis = "127.0.0.1:6379" }));
        Assert.Contains("Ferret:Redis needs the round log on PostgreSQL", e.Message);
    }
}
