using Ferret.Cli.ScaleOut;
using Npgsql;

namespace Ferret.Tests;

/// <summary>
/// PostgreSQL and Redis for tests: the servers <c>.ci/run</c> started (<c>FERRET_TEST_POSTGRES</c>, an admin
/// connection string; <c>FERRET_TEST_REDIS</c>, host:port), else throwaway ones started here from Debian's
/// packages, else the test is skipped with the reason (linked into the test projects that need them).
/// </summary>
internal static class TestServices
{
    public const string PostgresVariable = "FERRET_TEST_POSTGRES";
    public const string RedisVariable = "FERRET_TEST_REDIS";

    private static readonly Lazy<(string? Admin, string? Why)> Postgres = new(StartPostgres);
    private static readonly Lazy<(string? Connection, string? Why)> RedisServer = new(StartRedis);

    /// <summary>A fresh, empty PostgreSQL database of its own; skips the test when no server can be had.</summary>
    public static string NewPostgresDatabase()
    {
        var (admin, why) = Postgres.Value;
        Skip.If(admin is null, why);
        var name = "ferret_test_" + Guid.NewGuid().ToString("N")[..12];
        using (var c = new NpgsqlConnection(admin))
        {
            c.Open();
            using var cmd = c.CreateCommand();
            cmd.CommandText = $"CREATE DATABASE {name}";
            cmd.ExecuteNonQuery();
        }
        return new NpgsqlConnectionStringBuilder(admin) { Database = name }.ConnectionString;
    }

    /// <summary>The Redis server, with channels of its own under <paramref name="prefix"/>; skips the test when none can be had.</summary>
    public static string Redis(string prefix)
    {
        var (connection, why) = RedisServer.Value;
        Skip.If(connection is null, why);
        return $"{connection},channelPrefix={prefix}";
    }

    private static readonly List<IDisposable> Started = [];

    /// <summary>Servers started here stop when the test process ends, the quickest to stop (Redis, a kill) first.</summary>
    private static void StopAtExit(IDisposable server)
    {
        lock (Started)
        {
            if (Started.Count == 0)
            {
                AppDomain.CurrentDomain.ProcessExit += (_, _) =>
                {
                    lock (Started)
                    {
                        foreach (var s in Started.OrderBy(s => s is LocalRedis ? 0 : 1))
                            s.Dispose();
                    }
                };
            }
            Started.Add(server);
        }
    }

    private static (string?, string?) StartPostgres()
    {
        if (Environment.GetEnvironmentVariable(PostgresVariable) is { Length: > 0 } given)
            return (given, null);
        if (LocalPostgres.FindBinaries() is null)
            return (null, $"PostgreSQL is not installed and {PostgresVariable} is not set (.ci/run installs and starts it: apt-get install postgresql).");
        try
        {
            var server = LocalPostgres.Start(durable: false);
            StopAtExit(server);
            return (server.ConnectionString(), null);
        }
        catch (Exception e) when (e is InvalidOperationException or IOException or UnauthorizedAccessException or System.ComponentModel.Win32Exception)
        {
            return (null, $"A PostgreSQL server could not be started here: {e.Message}");
        }
    }

    private static (string?, string?) StartRedis()
    {
        if (Environment.GetEnvironmentVariable(RedisVariable) is { Length: > 0 } given)
            return (given, null);
        if (!LocalRedis.Installed)
            return (null, $"redis-server is not installed and {RedisVariable} is not set (.ci/run installs and starts it: apt-get install redis-server).");
        try
        {
            var server = LocalRedis.Start();
            StopAtExit(server);
            return (server.ConnectionString, null);
        }
        catch (Exception e) when (e is InvalidOperationException or IOException or UnauthorizedAccessException or System.ComponentModel.Win32Exception)
        {
            return (null, $"A Redis server could not be started here: {e.Message}");
        }
    }
}
