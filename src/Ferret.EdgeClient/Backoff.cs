using System.Net;
using Microsoft.AspNetCore.SignalR.Client;

namespace Ferret.EdgeClient;

/// <summary>
/// Exponential backoff with full jitter, capped, never giving up: an edge device keeps trying until the
/// coordinator is back (restarts, network loss) or the user stops it. As the hub's reconnect policy it stops
/// only when the coordinator refuses the token (revoked): trying again cannot help then.
/// </summary>
public sealed class Backoff(TimeSpan initial, TimeSpan cap) : IRetryPolicy
{
    public static Backoff Default { get; } = new(TimeSpan.FromMilliseconds(250), TimeSpan.FromSeconds(15));

    public TimeSpan Delay(long attempt)
    {
        double ceiling = Math.Min(cap.TotalMilliseconds, initial.TotalMilliseconds * Math.Pow(2, Math.Min(attempt, 30)));
        return TimeSpan.FromMilliseconds((ceiling / 2) + (Random.Shared.NextDouble() * ceiling / 2));
    }

    public TimeSpan? NextRetryDelay(RetryContext retryContext)
    {
        ArgumentNullException.ThrowIfNull(retryContext);
        if (retryContext.RetryReason is HttpRequestException { StatusCode: HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden })
            return null;
        return Delay(retryContext.PreviousRetryCount);
    }
}
