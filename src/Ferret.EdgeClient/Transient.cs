using System.Net;
using System.Net.WebSockets;
using Microsoft.AspNetCore.SignalR;

namespace Ferret.EdgeClient;

/// <summary>
/// Which failures an edge device waits out (the coordinator restarting, the network dropping, a busy
/// coordinator asking it to slow down) and which end it (a refused token, an experiment that does not exist):
/// one classification for REST calls, hub connections and hub calls.
/// </summary>
public static class Transient
{
    /// <summary>True when trying again later may succeed; false for refusals and for our own cancellation.</summary>
    public static bool Is(Exception e, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(e);
        return e switch
        {
            OperationCanceledException => !ct.IsCancellationRequested, // a timeout or a dropped connection, not the user
            HttpRequestException { StatusCode: null } => true,
            HttpRequestException { StatusCode: var s } => s is HttpStatusCode.RequestTimeout or HttpStatusCode.TooManyRequests
                or HttpStatusCode.InternalServerError or HttpStatusCode.BadGateway or HttpStatusCode.ServiceUnavailable or HttpStatusCode.GatewayTimeout,
            HubException h => h.Message.Contains("Too many calls", StringComparison.Ordinal),
            // The hub connection is not active (between a drop and the reconnect), or the socket went away mid-call.
            InvalidOperationException or IOException or WebSocketException or TimeoutException => true,
            _ => false,
        };
    }

    /// <summary>
    /// Runs <paramref name="call"/> until it succeeds, waiting out transient failures with capped exponential
    /// backoff and jitter for as long as the device runs; the first failure and then every tenth are reported.
    /// </summary>
    public static async Task<T> RetryAsync<T>(string what, Func<CancellationToken, Task<T>> call, Action<string> say, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(call);
        ArgumentNullException.ThrowIfNull(say);
        for (int attempt = 0; ; attempt++)
        {
            try
            {
                var result = await call(ct).ConfigureAwait(false);
                if (attempt > 0)
                    say($"{what}: succeeded after {attempt + 1} attempts");
                return result;
            }
            catch (Exception e) when (Is(e, ct))
            {
                if (attempt % 10 == 0)
                    say($"{what}: {e.Message.Split('\n')[0]}; retrying with backoff");
            }
            await Task.Delay(Backoff.Default.Delay(attempt), ct).ConfigureAwait(false);
        }
    }

    public static Task RetryAsync(string what, Func<CancellationToken, Task> call, Action<string> say, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(call);
        return RetryAsync(what, async c =>
        {
            await call(c).ConfigureAwait(false);
            return true;
        }, say, ct);
    }
}
