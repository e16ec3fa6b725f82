using System.Data.Common;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace Ferret.Coordinator.Persistence;

/// <summary>Healthy while the round log answers a query; a coordinator that cannot reach its database must not take rounds.</summary>
public sealed class RoundLogHealthCheck(IRoundLog log) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        try
        {
            log.ListExperiments();
            return Task.FromResult(HealthCheckResult.Healthy($"round log on {log.Description}"));
        }
        catch (Exception e) when (e is DbException or IOException or InvalidOperationException or TimeoutException)
        {
            return Task.FromResult(HealthCheckResult.Unhealthy($"round log on {log.Description} does not answer: {e.Message}"));
        }
    }
}
