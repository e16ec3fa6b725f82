using Ferret.Coordinator.Persistence;
using Ferret.Core.Protocol;
using Microsoft.AspNetCore.SignalR;
using Microsoft.Extensions.Options;

namespace Ferret.Coordinator.Rounds;

/// <summary>
/// Writes rejected packets where operators look (a round-log row, a warning, an observer event), at most
/// <see cref="CoordinatorOptions.RejectionsPerMinute"/> per client per minute: a client that floods the door
/// fills neither the disk nor the log. Every rejection is counted in the metrics and answered with its
/// reason; the first written after a quiet spell says how many were left out.
/// </summary>
public sealed partial class RejectionWriter(IRoundLog log, DatabaseGate gate, IHubContext<RoundsHub> hub, TimeProvider clock, IOptions<CoordinatorOptions> options,
    ILogger<RejectionWriter> logger)
{
    /// <summary>Longest reason kept: reasons may quote what the caller sent.</summary>
    public const int MaxReasonChars = 500;

    private readonly Dictionary<string, Window> _windows = new(StringComparer.Ordinal);

    /// <summary>Records one rejection; <paramref name="experimentId"/> is null when the caller's id was not valid.</summary>
    public async Task WriteAsync(string clientId, string? clientName, string? experimentId, int round, long bytes, string reason)
    {
        ArgumentNullException.ThrowIfNull(clientId);
        ArgumentNullException.ThrowIfNull(reason);
        CoordinatorMetrics.PacketsRejected.Add(1);
        if (reason.Length > MaxReasonChars)
            reason = string.Concat(reason.AsSpan(0, MaxReasonChars), "...");
        if (!TryTake(clientId, out long suppressed))
            return;
        if (suppressed > 0)
            reason += $" ({suppressed} more rejections of this client in the last minute were counted, not written)";
        var at = clock.GetUtcNow(); // the same instant in the log and the event, so a dashboard can tell them apart from new ones
        using (await gate.EnterAsync().ConfigureAwait(false))
            log.RecordRejection(experimentId, round, clientId, reason, bytes, at);
        Log.Rejected(logger, clientId, experimentId ?? "(invalid id)", round, reason);
        if (experimentId is null)
            return;
        try
        {
            // Observers only, best effort: the rejection is in the round log already.
            await hub.Clients.Group(RoundsHub.ObserverGroup(experimentId)).SendAsync(RoundsProtocol.ClientEvent, new ClientEvent
            {
                ExperimentId = experimentId,
                Round = round,
                ClientId = clientId,
                ClientName = clientName,
                Kind = ClientEvent.Rejected,
                Bytes = bytes,
                Detail = reason,
                AtUtc = at,
            }).ConfigureAwait(false);
        }
        catch (Exception e) when (e is TimeoutException or IOException or StackExchange.Redis.RedisException)
        {
            Log.NotifyFailed(logger, e, experimentId);
        }
    }

    private bool TryTake(string clientId, out long suppressedBefore)
    {
        var now = clock.GetUtcNow();
        int limit = options.Value.RejectionsPerMinute;
        lock (_windows)
        {
            if (!_windows.TryGetValue(clientId, out var w) || now - w.Start >= TimeSpan.FromMinutes(1))
            {
                if (_windows.Count > 100_000)
                    _windows.Clear(); // a bound on the bookkeeping itself; worst case some clients get a fresh minute
                w = new Window(now, 0, w?.Suppressed ?? 0);
                _windows[clientId] = w;
            }
            if (w.Written >= limit)
            {
                _windows[clientId] = w with { Suppressed = w.Suppressed + 1 };
                suppressedBefore = 0;
                return false;
            }
            suppressedBefore = w.Suppressed;
            _windows[clientId] = w with { Written = w.Written + 1, Suppressed = 0 };
            return true;
        }
    }

    private sealed record Window(DateTimeOffset Start, int Written, long Suppressed);

    private static partial class Log
    {
        [LoggerMessage(EventId = 1, Level = LogLevel.Warning, Message = "Rejected packet from {Client} for {Experiment} round {Round}: {Reason}")]
        public static partial void Rejected(ILogger logger, string client, string experiment, int round, string reason);

        [LoggerMessage(EventId = 3, Level = LogLevel.Warning, Message = "Could not tell the observers of {Experiment} about a rejection")]
        public static partial void NotifyFailed(ILogger logger, Exception exception, string experiment);
    }
}
