using System.Collections.Concurrent;

namespace Ferret.Coordinator.Rounds;

/// <summary>
/// Who is connected and has joined which experiment: the pool a round samples from. A client may hold
/// several connections (a reconnect can overlap the old one); it counts while any of them is live.
/// </summary>
public sealed class Participants
{
    private readonly ConcurrentDictionary<string, (string ClientId, string ExperimentId)> _connections = new(StringComparer.Ordinal);

    /// <summary>Raised when a client joins, so the round engine can open a round without waiting for its tick.</summary>
    public event Action? Changed;

    public void Join(string connectionId, string clientId, string experimentId)
    {
        _connections[connectionId] = (clientId, experimentId);
        Changed?.Invoke();
    }

    /// <summary>Forgets a connection; returns what it had joined, if anything.</summary>
    public (string ClientId, string ExperimentId)? Leave(string connectionId) =>
        _connections.TryRemove(connectionId, out var joined) ? joined : null;

    /// <summary>Distinct clients with a live connection to the experiment, in ordinal order.</summary>
    public IReadOnlyList<string> Connected(string experimentId) =>
        _connections.Values.Where(v => v.ExperimentId == experimentId).Select(v => v.ClientId).Distinct(StringComparer.Ordinal)
            .Order(StringComparer.Ordinal).ToList();

    public bool IsConnected(string clientId, string experimentId) =>
        _connections.Values.Any(v => v.ClientId == clientId && v.ExperimentId == experimentId);
}
