using System.Globalization;
using System.Threading.RateLimiting;
using Microsoft.Extensions.Options;

namespace Ferret.Coordinator.Security;

/// <summary>
/// Failed authentications and enrolments per remote address (any answer 401), through the rate limiter
/// ASP.NET Core's own middleware is built on: once an address has spent its
/// <see cref="CoordinatorOptions.FailedAuthenticationsPerMinute"/> failures in the current minute, every
/// request from it is answered 429 with <c>Retry-After</c> before its token is even looked at.
/// </summary>
public sealed class FailedAuthenticationLimiter : IDisposable
{
    private readonly PartitionedRateLimiter<string> _failures;

    public FailedAuthenticationLimiter(IOptions<CoordinatorOptions> options)
    {
        ArgumentNullException.ThrowIfNull(options);
        int perMinute = options.Value.FailedAuthenticationsPerMinute;
        _failures = PartitionedRateLimiter.Create<string, string>(address => RateLimitPartition.GetFixedWindowLimiter(address, _ => new FixedWindowRateLimiterOptions
        {
            PermitLimit = perMinute,
            Window = TimeSpan.FromMinutes(1),
            QueueLimit = 0,
            AutoReplenishment = true,
        }));
    }

    /// <summary>The middleware: refuses locked-out addresses, counts the 401s the rest of the pipeline answers.</summary>
    public async Task InvokeAsync(HttpContext context, Func<Task> next)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(next);
        string address = context.Connection.RemoteIpAddress?.ToString() ?? "unknown";
        using (var probe = _failures.AttemptAcquire(address, 0))
        {
            if (!probe.IsAcquired)
            {
                CoordinatorMetrics.AuthenticationsLimited.Add(1);
                context.Response.StatusCode = StatusCodes.Status429TooManyRequests;
                context.Response.Headers.RetryAfter = probe.TryGetMetadata(MetadataName.RetryAfter, out var after)
                    ? ((int)Math.Ceiling(after.TotalSeconds)).ToString(CultureInfo.InvariantCulture)
                    : "60";
                await context.Response.WriteAsync("Too many failed authentications from this address; try again later.").ConfigureAwait(false);
                return;
            }
        }
        await next().ConfigureAwait(false);
        if (context.Response.StatusCode == StatusCodes.Status401Unauthorized)
            _failures.AttemptAcquire(address).Dispose();
    }

    public void Dispose() => _failures.Dispose();
}
