using Ferret.Coordinator.Persistence.Sql;
using Ferret.Coordinator.Rounds;
using Microsoft.AspNetCore.SignalR;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace Ferret.Coordinator.ScaleOut;

/// <summary>
/// How a coordinator shares its work: alone on SQLite, or as one of several instances on a PostgreSQL round
/// log (experiment leases, shared participants, nudges through the database) with SignalR's Redis backplane
/// carrying hub messages between instances.
/// </summary>
public static class ScaleOutServices
{
    /// <summary>A name for this instance: the configured one, or host, process and a random suffix.</summary>
    public static string InstanceName(CoordinatorOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        return string.IsNullOrWhiteSpace(options.InstanceId)
            ? $"{Environment.MachineName}-{Environment.ProcessId}-{Guid.NewGuid().ToString("N")[..6]}"
            : options.InstanceId;
    }

    public static IServiceCollection AddScaleOut(this IServiceCollection services, ISignalRServerBuilder signalR, CoordinatorOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        bool shared = Persistence.RoundLogStorage.IsPostgres(options.RoundLogSetting);
        string instance = InstanceName(options);
        if (!shared)
        {
            if (!string.IsNullOrWhiteSpace(options.Redis))
                throw new OptionsValidationException(CoordinatorOptions.Section, typeof(CoordinatorOptions),
                    ["Ferret:Redis needs the round log on PostgreSQL (Ferret:RoundLog=Host=...): instances share their rounds through it."]);
            services.AddSingleton<IExperimentOwnership>(new SoleCoordinator(instance));
            services.AddSingleton<IParticipants, Participants>();
            return services;
        }
        services.AddSingleton(sp => new ExperimentLeases((PostgresDatabase)sp.GetRequiredService<SqlDatabase>(), sp.GetRequiredService<Persistence.IRoundLog>(),
            sp.GetRequiredService<TimeProvider>(), instance, TimeSpan.FromSeconds(options.LeaseSeconds), sp.GetRequiredService<ILogger<ExperimentLeases>>()));
        services.AddSingleton<IExperimentOwnership>(sp => sp.GetRequiredService<ExperimentLeases>());
        services.AddHostedService(sp => sp.GetRequiredService<ExperimentLeases>());
        services.AddSingleton<IParticipants>(sp => new SharedParticipants((PostgresDatabase)sp.GetRequiredService<SqlDatabase>(),
            sp.GetRequiredService<ExperimentLeases>(), sp.GetRequiredService<TimeProvider>()));
        if (!string.IsNullOrWhiteSpace(options.Redis))
        {
            var redis = ConfigurationOptions.Parse(options.Redis);
            // One Redis may serve several deployments: each keeps to its own channels unless the configuration names a prefix.
            if (redis.ChannelPrefix.IsNullOrEmpty)
                redis.ChannelPrefix = RedisChannel.Literal("ferret");
            // A slow first connect (a busy machine, Redis restarting) is retried in the background instead of failing for good.
            if (!options.Redis.Contains("abortConnect", StringComparison.OrdinalIgnoreCase))
                redis.AbortOnConnectFail = false;
            // Round events are worth waiting for longer than a cache read: 15 s unless the configuration says otherwise.
            if (!options.Redis.Contains("syncTimeout", StringComparison.OrdinalIgnoreCase) && !options.Redis.Contains("asyncTimeout", StringComparison.OrdinalIgnoreCase))
                redis.SyncTimeout = redis.AsyncTimeout = 15_000;
            signalR.AddStackExchangeRedis(o => o.Configuration = redis);
        }
        return services;
    }
}
