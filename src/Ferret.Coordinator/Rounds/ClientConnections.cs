using System.Collections.Concurrent;
using Microsoft.AspNetCore.SignalR;

namespace Ferret.Coordinator.Rounds;

/// <summary>
/// Every live hub connection of every enrolled client, so revoking a client cuts its connections at once
/// (authentication is checked when a connection opens, not on each call).
/// </summary>
public sealed class ClientConnections
{
    private readonly ConcurrentDictionary<string, (string ClientId, HubCallerContext Context)> _live = new(StringComparer.Ordinal);

    public void Add(string clientId, HubCallerContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        _live[context.ConnectionId] = (clientId, context);
    }

    public void Remove(string connectionId) => _live.TryRemove(connectionId, out _);

    /// <summary>Aborts every connection of the client; returns how many there were.</summary>
    public int Abort(string clientId)
    {
        int n = 0;
        foreach (var (connectionId, (id, context)) in _live)
        {
            if (id != clientId)
                continue;
            context.Abort();
            _live.TryRemove(connectionId, out _);
            n++;
        }
        return n;
    }
}
