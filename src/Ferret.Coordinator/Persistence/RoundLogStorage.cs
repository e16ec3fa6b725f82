using Ferret.Coordinator.Persistence.Sql;

namespace Ferret.Coordinator.Persistence;

/// <summary>Opens the round log that <c>Ferret:RoundLog</c> names: a PostgreSQL connection string, or a SQLite file path.</summary>
public static class RoundLogStorage
{
    /// <summary>A PostgreSQL connection string names its host (<c>Host=...</c>); anything else is a SQLite file path.</summary>
    public static bool IsPostgres(string roundLog)
    {
        ArgumentNullException.ThrowIfNull(roundLog);
        return roundLog.Split(';').Select(p => p.Trim()).Any(p =>
            p.StartsWith("Host=", StringComparison.OrdinalIgnoreCase) || p.StartsWith("Server=", StringComparison.OrdinalIgnoreCase));
    }

    /// <summary>The database the setting names, its schema created or migrated.</summary>
    public static SqlDatabase Open(string roundLog) =>
        IsPostgres(roundLog) ? new PostgresDatabase(roundLog) : new SqliteDatabase(roundLog);

    /// <summary>Registers the database, and the round log, the client registry and the private-round store over it.</summary>
    public static IServiceCollection AddRoundLog(this IServiceCollection services, Func<IServiceProvider, string> roundLog)
    {
        ArgumentNullException.ThrowIfNull(roundLog);
        services.AddSingleton(sp => Open(roundLog(sp)));
        services.AddSingleton<IRoundLog>(sp => new SqlRoundLog(sp.GetRequiredService<SqlDatabase>()));
        services.AddSingleton<IClientRegistry>(sp => new SqlClientRegistry(sp.GetRequiredService<SqlDatabase>()));
        services.AddSingleton<IPrivateRoundStore>(sp => new SqlPrivateRoundStore(sp.GetRequiredService<SqlDatabase>()));
        return services;
    }
}
