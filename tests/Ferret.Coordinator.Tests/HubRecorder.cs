using Ferret.Core.Privacy;
using Ferret.Core.Protocol;
using Microsoft.AspNetCore.SignalR.Client;

namespace Ferret.Coordinator.Tests;

/// <summary>Records what the coordinator pushes on a hub connection and waits for a message that matches.</summary>
internal sealed class HubRecorder
{
    private readonly List<object> _messages = [];

    public HubRecorder(HubConnection connection)
    {
        ArgumentNullException.ThrowIfNull(connection);
        connection.On<RoundAssignment>(RoundsProtocol.Assignment, Add);
        connection.On<RoundEvent>(RoundsProtocol.RoundEvent, Add);
        connection.On<ClientEvent>(RoundsProtocol.ClientEvent, Add);
        connection.On<ShareKeysRequest>(RoundsProtocol.ShareKeysRequest, Add);
        connection.On<MaskedInputRequest>(RoundsProtocol.MaskedInputRequest, Add);
        connection.On<UnmaskRequest>(RoundsProtocol.UnmaskRequest, Add);
    }

    public IReadOnlyList<T> All<T>()
    {
        lock (_messages)
            return [.. _messages.OfType<T>()];
    }

    public async Task<T> WaitFor<T>(Func<T, bool> match, double seconds = 15)
    {
        var until = DateTime.UtcNow.AddSeconds(seconds);
        while (DateTime.UtcNow < until)
        {
            if (All<T>().FirstOrDefault(match) is { } hit)
                return hit;
            await Task.Delay(20);
        }
        throw new TimeoutException($"No matching {typeof(T).Name} within {seconds} s; received: {string.Join(", ", All<object>().Select(Describe))}");
    }

    private static string Describe(object m) => m switch
    {
        RoundAssignment a => $"assignment {a.Round}",
        RoundEvent e => $"round {e.Round} {e.Kind}",
        ClientEvent c => $"{c.ClientId} {c.Kind} {c.Round}",
        _ => m.ToString() ?? "",
    };

    private void Add(object message)
    {
        lock (_messages)
            _messages.Add(message);
    }
}
