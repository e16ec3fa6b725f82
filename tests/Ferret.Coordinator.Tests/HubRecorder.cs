using Ferret.Core.Privacy;
using Ferret.Core.Protocol;
using Microsoft.AspNetCore.SignalR.Client;

namespace Ferret.Coordinator.Tests;

/// <summary>
/// Records what the coordinator pushes on a hub connection and waits for a message that matches: woken by each
/// message as it arrives; the timeout only turns a hang into a failure with what did arrive, it is no deadline.
/// </summary>
internal sealed class HubRecorder
{
    private readonly List<object> _messages = [];
    private TaskCompletionSource _arrived = new(TaskCreationOptions.RunContinuationsAsynchronously);

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

    public async Task<T> WaitFor<T>(Func<T, bool> match, double seconds = 300)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(seconds));
        while (true)
        {
            Task arrived;
            lock (_messages)
            {
                if (_messages.OfType<T>().FirstOrDefault(match) is { } hit)
                    return hit;
                arrived = _arrived.Task;
            }
            try
            {
                await arrived.WaitAsync(timeout.Token);
            }
            catch (OperationCanceledException)
            {
                throw new TimeoutException($"No matching {typeof(T).Name} within {seconds} s; received: {string.Join(", ", All<object>().Select(Describe))}");
            }
        }
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
        TaskCompletionSource woken;
        lock (_messages)
        {
            _messages.Add(message);
            woken = _arrived;
            _arrived = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        }
        woken.SetResult();
    }
}
