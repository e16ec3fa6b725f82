using System.Net;
using System.Runtime.InteropServices;
using System.Text.Json;
using System.Threading.Channels;
using Ferret.Core.Protocol;
using Microsoft.AspNetCore.SignalR;
using Microsoft.AspNetCore.SignalR.Client;
using Microsoft.Extensions.DependencyInjection;

namespace Ferret.EdgeClient;

/// <summary>
/// The edge client's connection to the rounds hub, from the first second to the last: connects, joins and
/// rejoins, retrying every transient failure with capped backoff and jitter (the hub's own reconnect, and this
/// class's loop when the hub gives up or the first connection never came up). What the coordinator pushes
/// (assignments, round events, the result of each rejoin) goes into <see cref="Messages"/> in arrival order.
/// A refusal that retrying cannot fix (a revoked token, an experiment that does not exist) completes
/// <see cref="Messages"/> with the error, which ends the client with one line.
/// </summary>
public sealed class CoordinatorSession : IAsyncDisposable
{
    private readonly HubConnection _hub;
    private readonly Action<string> _say;
    private readonly Func<string> _capabilities;
    private readonly Channel<object> _messages = Channel.CreateUnbounded<object>(new UnboundedChannelOptions { SingleReader = true });
    private readonly SemaphoreSlim _joining = new(1, 1);
    private readonly CancellationTokenSource _life = new();
    private string _experimentId = "";
    private bool _joined;

    public CoordinatorSession(Uri coordinator, string token, Action<string> say, Func<string> capabilities)
    {
        ArgumentNullException.ThrowIfNull(coordinator);
        _say = say;
        _capabilities = capabilities;
        Coordinator = coordinator;
        _hub = new HubConnectionBuilder()
            .WithUrl(new Uri(coordinator, RoundsProtocol.Path), o => o.AccessTokenProvider = () => Task.FromResult<string?>(token))
            .AddMessagePackProtocol()
            .WithAutomaticReconnect(Backoff.Default)
            .Build();
        _hub.ServerTimeout = TimeSpan.FromSeconds(60);
        _hub.On<RoundAssignment>(RoundsProtocol.Assignment, a => _messages.Writer.TryWrite(a));
        _hub.On<RoundEvent>(RoundsProtocol.RoundEvent, e => _messages.Writer.TryWrite(e));
        _hub.Reconnecting += e =>
        {
            _say($"connection lost ({e?.Message ?? "closed"}); reconnecting");
            return Task.CompletedTask;
        };
        _hub.Reconnected += connectionId =>
        {
            _say("reconnected; joining again");
            _ = RejoinAsync();
            return Task.CompletedTask;
        };
        _hub.Closed += e =>
        {
            // The hub stopped reconnecting (the token was refused) or the coordinator closed the connection: start over.
            if (!_life.IsCancellationRequested)
                _ = RestartAsync(e);
            return Task.CompletedTask;
        };
    }

    public Uri Coordinator { get; }

    /// <summary>The connection itself, for the secure-aggregation stages that ride on it.</summary>
    internal HubConnection Hub => _hub;

    /// <summary>Assignments, round events and rejoin results, in the order they arrived.</summary>
    public ChannelReader<object> Messages => _messages.Reader;

    /// <summary>Connects (retrying for as long as it takes) and joins the experiment; the join's result is returned, later rejoins go to <see cref="Messages"/>.</summary>
    public async Task<JoinResult> StartAsync(string experimentId, CancellationToken ct)
    {
        _experimentId = experimentId;
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(ct, _life.Token);
        await ConnectAsync(linked.Token).ConfigureAwait(false);
        var join = await JoinAsync(linked.Token).ConfigureAwait(false);
        _joined = true;
        return join;
    }

    /// <summary>
    /// Reports the start-up device check before joining (observers see it as a client event), connecting first and
    /// waiting out transient failures; the coordinator's refusal is final.
    /// </summary>
    public async Task ReportDeviceCheckAsync(string experimentId, string device, bool passed, string summary, CancellationToken ct)
    {
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(ct, _life.Token);
        for (int attempt = 0; ; attempt++)
        {
            await ConnectAsync(linked.Token).ConfigureAwait(false);
            try
            {
                await _hub.InvokeAsync(RoundsProtocol.ReportDeviceCheck, experimentId, device, passed, summary, linked.Token).ConfigureAwait(false);
                return;
            }
            catch (Exception e) when (Transient.Is(e, linked.Token))
            {
                await Task.Delay(Backoff.Default.Delay(attempt), linked.Token).ConfigureAwait(false);
            }
        }
    }

    /// <summary>Connects, retrying every transient failure; a refused token is final.</summary>
    private async Task ConnectAsync(CancellationToken ct)
    {
        for (int attempt = 0; ; attempt++)
        {
            if (_hub.State == HubConnectionState.Connected)
                return;
            if (_hub.State == HubConnectionState.Disconnected)
            {
                try
                {
                    await _hub.StartAsync(ct).ConfigureAwait(false);
                    _say($"connected to {Coordinator}");
                    return;
                }
                catch (HttpRequestException e) when (e.StatusCode is HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden)
                {
                    throw new UnauthorizedAccessException($"The coordinator refused the token ({(int)e.StatusCode}): the client was revoked or never enrolled; enrol again or check --token.", e);
                }
                catch (Exception e) when (Transient.Is(e, ct))
                {
                    if (attempt % 10 == 0)
                        _say($"coordinator not reachable ({e.Message.Split('\n')[0]}); retrying with backoff");
                }
            }
            // Connecting or reconnecting (the hub's own loop is at work), or a failed start: wait and look again.
            await Task.Delay(Backoff.Default.Delay(attempt), ct).ConfigureAwait(false);
        }
    }

    /// <summary>Joins, retrying while the connection comes and goes; the coordinator's refusal (no such experiment) is final.</summary>
    private async Task<JoinResult> JoinAsync(CancellationToken ct)
    {
        await _joining.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            for (int attempt = 0; ; attempt++)
            {
                await ConnectAsync(ct).ConfigureAwait(false);
                try
                {
                    var join = await _hub.InvokeAsync<JoinResult>(RoundsProtocol.Join, _experimentId, _capabilities(), ct).ConfigureAwait(false);
                    if (join.OpenAssignment is { } pending)
                        _messages.Writer.TryWrite(pending);
                    return join;
                }
                catch (HubException e) when (!Transient.Is(e, ct))
                {
                    throw new InvalidDataException($"The coordinator refused to let this client join {_experimentId}: {e.Message}", e);
                }
                catch (Exception e) when (Transient.Is(e, ct))
                {
                    if (attempt % 10 == 0)
                        _say($"join not delivered ({e.Message.Split('\n')[0]}); retrying");
                }
                await Task.Delay(Backoff.Default.Delay(attempt), ct).ConfigureAwait(false);
            }
        }
        finally
        {
            _joining.Release();
        }
    }

    /// <summary>After a reconnect: join again and hand the result to the worker, which replays what was missed.</summary>
    private async Task RejoinAsync()
    {
        if (!_joined)
            return; // the first join is still in progress and will complete by itself
        try
        {
            _messages.Writer.TryWrite(await JoinAsync(_life.Token).ConfigureAwait(false));
        }
        catch (OperationCanceledException) when (_life.IsCancellationRequested)
        {
        }
        catch (Exception e)
        {
            _messages.Writer.TryComplete(e);
        }
    }

    private async Task RestartAsync(Exception? reason)
    {
        _say($"connection closed ({reason?.Message.Split('\n')[0] ?? "by the coordinator"}); connecting again");
        try
        {
            await ConnectAsync(_life.Token).ConfigureAwait(false);
            _say("reconnected; joining again");
            await RejoinAsync().ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (_life.IsCancellationRequested)
        {
        }
        catch (Exception e)
        {
            _messages.Writer.TryComplete(e);
        }
    }

    /// <summary>Sends a packet in one message or streamed in chunks, retrying across reconnects until the deadline.</summary>
    public async Task<SubmitResult> SubmitAsync(RoundAssignment a, byte[] packet, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(packet);
        for (int attempt = 0; ; attempt++)
        {
            try
            {
                return packet.Length <= RoundsProtocol.ChunkBytes
                    ? await _hub.InvokeAsync<SubmitResult>(RoundsProtocol.SubmitUpdate, a.ExperimentId, a.Round, packet, ct).ConfigureAwait(false)
                    : await _hub.InvokeAsync<SubmitResult>(RoundsProtocol.SubmitUpdateStream, a.ExperimentId, a.Round, Chunks(packet), ct).ConfigureAwait(false);
            }
            catch (Exception e) when (Transient.Is(e, ct) && DateTimeOffset.UtcNow < a.DeadlineUtc)
            {
                // Not connected right now (the coordinator restarts, the network drops): wait for the reconnect.
                if (attempt == 0)
                    _say($"round {a.Round}: packet not delivered ({e.Message.Split('\n')[0]}); retrying until the deadline");
                await Task.Delay(Backoff.Default.Delay(attempt), ct).ConfigureAwait(false);
            }
            catch (Exception e) when (Transient.Is(e, ct))
            {
                return new SubmitResult { Accepted = false, Reason = $"not delivered before the deadline: {e.Message}" };
            }
            catch (HubException e)
            {
                return new SubmitResult { Accepted = false, Reason = $"refused by the coordinator: {e.Message}" };
            }
        }
    }

    /// <summary>Reports the model fingerprint after a round; true when every report so far agrees, null when it could not be reported.</summary>
    public async Task<bool?> ReportFingerprintAsync(int round, string fingerprint, CancellationToken ct)
    {
        try
        {
            return await _hub.InvokeAsync<bool>(RoundsProtocol.ReportFingerprint, _experimentId, round, fingerprint, ct).ConfigureAwait(false);
        }
        catch (Exception e) when (e is HubException || Transient.Is(e, ct))
        {
            _say($"could not report the fingerprint of round {round}: {e.Message.Split('\n')[0]}");
            return null;
        }
    }

    /// <summary>Tells the coordinator this client cannot answer its assignment, so the round stops waiting for it.</summary>
    public async Task ReportFailureAsync(RoundAssignment a, string reason, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(a);
        try
        {
            await _hub.InvokeAsync(RoundsProtocol.ReportFailure, a.ExperimentId, a.Round, reason, ct).ConfigureAwait(false);
        }
        catch (Exception e) when (e is HubException || Transient.Is(e, ct))
        {
            _say($"round {a.Round}: could not report the failure: {e.Message.Split('\n')[0]}");
        }
    }

    /// <summary>What this device is, for the coordinator's client registry.</summary>
    public static string DescribeDevice(string device) => JsonSerializer.Serialize(new
    {
        device,
        os = RuntimeInformation.OSDescription,
        arch = RuntimeInformation.ProcessArchitecture.ToString(),
        cores = Environment.ProcessorCount,
        memoryBytes = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes,
        runtime = RuntimeInformation.FrameworkDescription,
    });

    private static async IAsyncEnumerable<byte[]> Chunks(byte[] packet)
    {
        for (int offset = 0; offset < packet.Length; offset += RoundsProtocol.ChunkBytes)
        {
            yield return packet.AsSpan(offset, Math.Min(RoundsProtocol.ChunkBytes, packet.Length - offset)).ToArray();
            await Task.Yield();
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _life.CancelAsync().ConfigureAwait(false);
        await _hub.DisposeAsync().ConfigureAwait(false);
        _joining.Dispose();
        _life.Dispose();
    }
}
