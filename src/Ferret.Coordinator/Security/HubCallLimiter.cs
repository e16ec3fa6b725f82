using Microsoft.AspNetCore.SignalR;
using Microsoft.Extensions.Options;

namespace Ferret.Coordinator.Security;

/// <summary>
/// A token bucket per hub connection (<see cref="CoordinatorOptions.HubCallsPerSecond"/>, bursts of twice as
/// many): a connection that calls faster is refused with a reason, call by call, and slows nobody else. The
/// bucket runs on the coordinator's <see cref="TimeProvider"/>, so tests drive it with fake time.
/// </summary>
public sealed class HubCallLimiter(IOptions<CoordinatorOptions> options, TimeProvider clock) : IHubFilter
{
    private static readonly object Key = new();

    public async ValueTask<object?> InvokeMethodAsync(HubInvocationContext invocationContext, Func<HubInvocationContext, ValueTask<object?>> next)
    {
        ArgumentNullException.ThrowIfNull(invocationContext);
        ArgumentNullException.ThrowIfNull(next);
        if (invocationContext.Context.Items.TryGetValue(Key, out var value) && value is TokenBucket bucket && !bucket.TryTake(clock.GetTimestamp()))
        {
            CoordinatorMetrics.HubCallsLimited.Add(1);
            throw new HubException($"Too many calls: at most {options.Value.HubCallsPerSecond} per second on one connection.");
        }
        return await next(invocationContext).ConfigureAwait(false);
    }

    public Task OnConnectedAsync(HubLifetimeContext context, Func<HubLifetimeContext, Task> next)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(next);
        int rate = options.Value.HubCallsPerSecond;
        context.Context.Items[Key] = new TokenBucket(rate, 2 * rate, clock.GetTimestamp(), clock.TimestampFrequency);
        return next(context);
    }

    /// <summary>Tokens refill continuously at <c>rate</c> per second up to <c>capacity</c>; each call takes one.</summary>
    private sealed class TokenBucket(double rate, double capacity, long start, long frequency)
    {
        private readonly Lock _gate = new();
        private double _tokens = double.NaN;
        private long _last = start;

        public bool TryTake(long now)
        {
            lock (_gate)
            {
                double tokens = double.IsNaN(_tokens) ? capacity : _tokens;
                _tokens = Math.Min(capacity, tokens + (rate * (now - _last) / frequency));
                _last = now;
                if (_tokens < 1)
                    return false;
                _tokens -= 1;
                return true;
            }
        }
    }
}
