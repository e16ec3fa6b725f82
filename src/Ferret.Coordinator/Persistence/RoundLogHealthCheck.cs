using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace Ferret.Coordinator.Persistence;

/// <summary>Healthy while the round log answers a query; a coordinator that cannot reach its database must not take rounds.</summary>
public sealed class RoundLogHealthCheck(RoundLog log) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        try
        {
            log.ListExperiments();
            return Task.FromResult(HealthCheckResult.Healthy($"round log at {log.DatabasePath}"));
        }
        catch (Exception e) when (e is Microsoft.Data.Sqlite.SqliteException or IOException or InvalidOperationException)
        {
            return Task.FromResult(HealthCheckResult.Unhealthy($"round log at {log.DatabasePath} does not answer: {e.Message}"));
        }
    }
}
