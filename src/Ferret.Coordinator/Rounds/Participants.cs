using System.Collections.Concurrent;

namespace Ferret.Coordinator.Rounds;

/// <summary>
/// Who is connected and has joined which experiment: the pool a round samples from. A client may hold
/// several connections (a reconnect can overlap the old one); it counts while any of them is live.
/// </summary>
public interface IParticipants
{
    void Join(string connectionId, string clientId, string experimentId);

    /// <summary>Forgets a connection of this instance; returns what it had joined, if anything.</summary>
    (string ClientId, string ExperimentId)? Leave(string connectionId);

    /// <summary>Distinct clients with a live connection to the experiment (on any instance), in ordinal order.</summary>
    IReadOnlyList<string> Connected(string experimentId);

    bool IsConnected(string clientId, string experimentId);
}

/// <summary>The participants of a coordinator that runs alone: its own connections, in memory.</summary>
public sealed class Participants : IParticipants
{
    private readonly ConcurrentDictionary<string, (string ClientId, string ExperimentId)> _connections = new(StringComparer.Ordinal);

    public void Join(string connectionId, string clientId, string experimentId) => _connections[connectionId] = (clientId, experimentId);

    public (string ClientId, string ExperimentId)? Leave(string connectionId) =>
        _connections.TryRemove(connectionId, out var joined) ? joined : null;

    public IReadOnlyList<string> Connected(string experimentId) =>
        _connections.Values.Where(v => v.ExperimentId == experimentId).Select(v => v.ClientId).Distinct(StringComparer.Ordinal)
            .Order(StringComparer.Ordinal).ToList();

    public bool IsConnected(string clientId, string experimentId) =>
        _connections.Values.Any(v => v.ClientId == clientId && v.ExperimentId == experimentId);
}
