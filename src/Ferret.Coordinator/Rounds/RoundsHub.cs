using System.Collections.Concurrent;
using System.Security.Claims;
using System.Security.Cryptography;
using System.Text.Json;
using Ferret.Coordinator.Persistence;
using Ferret.Coordinator.Privacy;
using Ferret.Coordinator.ScaleOut;
using Ferret.Coordinator.Security;
using Ferret.Core.Algorithms;
using Ferret.Core.Protocol;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.SignalR;
using Microsoft.Extensions.Options;

namespace Ferret.Coordinator.Rounds;

/// <summary>
/// The SignalR hub (MessagePack protocol) at <c>/hubs/rounds</c>. Clients join experiments, submit packets
/// and report fingerprints; observers subscribe to an experiment's live events. Every packet is checked at
/// the door (who sends it and for what before a byte of a stream is read, then size, format and every value,
/// see <see cref="PacketDoor"/>, then one per assigned client per round); a bad packet gets a reason back, is
/// counted, and never disturbs the round. Packets over one hub message stream in chunks (<see cref="SubmitUpdateStream"/>).
/// Any instance takes packets: the round log decides one per client per round, and the experiment's owner is
/// nudged to look. Every method carries its own policy (README, "Who may call what").
/// </summary>
[Authorize(Policy = Policies.Observer)]
public sealed partial class RoundsHub(IRoundLog log, IClientRegistry clients, ExperimentAlgorithms algorithms, IParticipants participants,
    IExperimentOwnership ownership, DatabaseGate gate, PacketDoor door, RejectionWriter rejections, ClientConnections connections,
    IOptions<CoordinatorOptions> options, TimeProvider clock, ILogger<RoundsHub> logger, SecureRounds secure) : Hub
{
    public const string Path = RoundsProtocol.Path;

    /// <summary>Clients with a streamed upload in progress: one at a time each, so a client cannot multiply what it makes the coordinator hold.</summary>
    private static readonly ConcurrentDictionary<string, byte> Uploading = new(StringComparer.Ordinal);

    /// <summary>Everyone taking part in or watching an experiment: its round events.</summary>
    public static string Group(string experimentId) => "experiment:" + experimentId;

    /// <summary>Those watching an experiment: its client events too (clients do not get each other's, which would grow with the square of their number).</summary>
    public static string ObserverGroup(string experimentId) => "observers:" + experimentId;

    private string ClientId => Context.User?.FindFirstValue(ClaimTypes.NameIdentifier) ?? throw new HubException("Not authenticated.");

    private bool IsClient => Context.User?.IsInRole(BearerAuthenticationHandler.ClientRole) == true;

    public override Task OnConnectedAsync()
    {
        if (IsClient)
            connections.Add(ClientId, Context);
        return base.OnConnectedAsync();
    }

    /// <summary>Receives live events of an experiment: round events and every client's.</summary>
    [Authorize(Policy = Policies.Observer)]
    public async Task Subscribe(string experimentId)
    {
        await RequireExperimentAsync(experimentId).ConfigureAwait(false);
        await Groups.AddToGroupAsync(Context.ConnectionId, Group(experimentId)).ConfigureAwait(false);
        await Groups.AddToGroupAsync(Context.ConnectionId, ObserverGroup(experimentId)).ConfigureAwait(false);
    }

    /// <summary>
    /// An enrolled client takes part in an experiment: it becomes eligible for its rounds, receives its
    /// events, and learns the descriptor, the last completed round and any assignment still waiting for it
    /// (after a reconnect or a coordinator restart).
    /// </summary>
    [Authorize(Policy = Policies.Client)]
    public async Task<JoinResult> Join(string experimentId, string? capabilitiesJson)
    {
        var experiment = await RequireExperimentAsync(experimentId).ConfigureAwait(false);
        string client = ClientId;
        if (!string.IsNullOrEmpty(capabilitiesJson))
        {
            if (capabilitiesJson.Length > CallerInput.MaxCapabilitiesChars)
                throw new HubException($"Capabilities of {capabilitiesJson.Length} characters exceed {CallerInput.MaxCapabilitiesChars}.");
            try
            {
                using var _ = JsonDocument.Parse(capabilitiesJson);
            }
            catch (JsonException e)
            {
                throw new HubException($"Capabilities are not JSON: {e.Message}");
            }
            using (await gate.EnterAsync().ConfigureAwait(false))
                clients.SetClientCapabilities(client, capabilitiesJson);
        }
        await Groups.AddToGroupAsync(Context.ConnectionId, Group(experimentId)).ConfigureAwait(false);
        int lastCompleted;
        RoundAssignment? assignment = null;
        (ExperimentAlgorithm Experiment, int Round)? secureRound = null;
        using (await gate.EnterAsync().ConfigureAwait(false))
        {
            var progress = log.GetProgress(experimentId);
            lastCompleted = progress.LastCompleted;
            if (progress.Open is { } open && log.GetSubmissionState(experimentId, open.Round, client)?.Assignment == AssignmentState.Assigned)
                assignment = new RoundAssignment { ExperimentId = experimentId, Round = open.Round, BaseRound = lastCompleted, DeadlineUtc = open.DeadlineUtc };
            if (progress.Open is { } current && algorithms.Get(experimentId) is { Private.Secure: true } secureExperiment)
            {
                assignment?.Privacy = secure.AssignmentInfo(secureExperiment, current.Round);
                secureRound = (secureExperiment, current.Round);
            }
            participants.Join(Context.ConnectionId, client, experimentId);
            ownership.Nudge(experimentId);
        }
        await Notify(new ClientEvent { ExperimentId = experimentId, Round = lastCompleted, ClientId = client, Kind = ClientEvent.Joined }).ConfigureAwait(false);
        if (secureRound is { } rejoined)
        {
            using (await gate.EnterAsync().ConfigureAwait(false))
                await secure.ResendAsync(rejoined.Experiment, rejoined.Round, client, Context.ConnectionAborted).ConfigureAwait(false);
        }
        return new JoinResult { Descriptor = experiment.Descriptor, State = experiment.State.ToString(), LastCompletedRound = lastCompleted, OpenAssignment = assignment };
    }

    /// <summary>A client's packet for a round in one message, as MessagePack bytes of a ClientUpdate.</summary>
    [Authorize(Policy = Policies.Client)]
    public Task<SubmitResult> SubmitUpdate(string experimentId, int round, byte[] packet)
    {
        long bytes = packet?.LongLength ?? 0;
        long limit = options.Value.MaxMessageBytes;
        return bytes > limit
            ? Reject(experimentId, round, bytes, $"packet of {bytes} bytes exceeds the message limit of {limit}; stream it in chunks")
            : Submit(experimentId, round, packet);
    }

    /// <summary>
    /// A large packet (a full delta) streamed in chunks; the whole is checked exactly like a one-message packet.
    /// Who sends it and for which round is checked before a chunk is read, the total is bounded by the
    /// experiment's largest valid packet, and the upload must end by the round's deadline.
    /// </summary>
    [Authorize(Policy = Policies.Client)]
    public async Task<SubmitResult> SubmitUpdateStream(string experimentId, int round, IAsyncEnumerable<byte[]> chunks)
    {
        ArgumentNullException.ThrowIfNull(chunks);
        ExperimentAlgorithm? found = null;
        if (CallerInput.IsId(experimentId))
        {
            using (await gate.EnterAsync().ConfigureAwait(false))
                found = algorithms.Get(experimentId);
        }
        if (found is not { } experiment)
        {
            await DrainAsync(chunks, options.Value.MaxMessageBytes).ConfigureAwait(false);
            return await Submit(experimentId, round, null).ConfigureAwait(false);
        }
        string client = ClientId;
        long limit = Math.Min(options.Value.MaxPacketBytes, PacketLimits.MaxPacketBytes(experiment.Descriptor));
        (string? Refusal, DateTimeOffset Deadline) state;
        using (await gate.EnterAsync().ConfigureAwait(false))
            state = NotAnswerable(experimentId, round, client);
        string? refusal = state.Refusal;
        if (refusal is null && !Uploading.TryAdd(client, 0))
            refusal = "another upload from this client is still in progress";
        if (refusal is not null)
        {
            long drained = await DrainAsync(chunks, limit).ConfigureAwait(false);
            return await Reject(experimentId, round, drained, refusal).ConfigureAwait(false);
        }
        try
        {
            var left = state.Deadline - clock.GetUtcNow();
            using var byDeadline = new CancellationTokenSource(left > TimeSpan.Zero ? left : TimeSpan.Zero, clock);
            using var cancel = CancellationTokenSource.CreateLinkedTokenSource(byDeadline.Token, Context.ConnectionAborted);
            var parts = new List<byte[]>();
            long total = 0;
            try
            {
                await foreach (var chunk in chunks.WithCancellation(cancel.Token).ConfigureAwait(false))
                {
                    total += chunk?.LongLength ?? 0;
                    if (total > limit)
                    {
                        parts.Clear();
                        total += await DrainAsync(chunks, limit).ConfigureAwait(false);
                        return await Reject(experimentId, round, total, $"streamed packet passed {limit} bytes, the most this experiment's packets can take").ConfigureAwait(false);
                    }
                    if (chunk is { Length: > 0 })
                        parts.Add(chunk);
                    KillSwitch.Reach(KillPoints.StreamedUpload);
                }
            }
            catch (OperationCanceledException) when (byDeadline.IsCancellationRequested)
            {
                return await Reject(experimentId, round, total, $"round {round} reached its deadline during the upload").ConfigureAwait(false);
            }
            var packet = new byte[total];
            long at = 0;
            foreach (var part in parts)
            {
                part.CopyTo(packet, at);
                at += part.Length;
            }
            parts.Clear();
            return await Submit(experimentId, round, packet).ConfigureAwait(false);
        }
        finally
        {
            Uploading.TryRemove(client, out _);
        }
    }

    /// <summary>
    /// Reads the rest of a refused stream without keeping it (SignalR closes a connection whose stream is left
    /// unread), up to <paramref name="budget"/> bytes or a minute; past that the sender's connection closes.
    /// </summary>
    private async Task<long> DrainAsync(IAsyncEnumerable<byte[]> chunks, long budget)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(1), clock);
        using var cancel = CancellationTokenSource.CreateLinkedTokenSource(timeout.Token, Context.ConnectionAborted);
        long total = 0;
        try
        {
            await foreach (var chunk in chunks.WithCancellation(cancel.Token).ConfigureAwait(false))
            {
                total += chunk?.LongLength ?? 0;
                if (total > budget)
                    break;
            }
        }
        catch (OperationCanceledException) when (cancel.IsCancellationRequested)
        {
        }
        return total;
    }

    /// <summary>A client could not train its assignment (out of memory, bad data): the round stops waiting for it.</summary>
    [Authorize(Policy = Policies.Client)]
    public async Task ReportFailure(string experimentId, int round, string reason)
    {
        await RequireExperimentAsync(experimentId).ConfigureAwait(false);
        string client = ClientId;
        reason = string.IsNullOrWhiteSpace(reason) ? "unspecified" : reason.Length > 500 ? reason[..500] : reason;
        using (await gate.EnterAsync().ConfigureAwait(false))
        {
            if (!log.MarkAssignmentFailed(experimentId, round, client, reason))
                throw new HubException($"This client has no open assignment in round {round} of '{experimentId}'.");
            ownership.Nudge(experimentId);
        }
        await Notify(new ClientEvent { ExperimentId = experimentId, Round = round, ClientId = client, Kind = ClientEvent.Failed, Detail = reason }).ConfigureAwait(false);
    }

    /// <summary>
    /// A client's start-up device self-test: observers see the device and the outcome; a failed device does not join,
    /// so this event is where its reason shows.
    /// </summary>
    [Authorize(Policy = Policies.Client)]
    public async Task ReportDeviceCheck(string experimentId, string device, bool passed, string? detail)
    {
        if (!IsClient)
            throw new HubException("Only enrolled clients report device checks.");
        if (string.IsNullOrEmpty(experimentId) || experimentId.Length > 128 || log.GetExperiment(experimentId) is null)
            throw new HubException("Unknown experiment.");
        device = string.IsNullOrWhiteSpace(device) ? "unknown" : device.Length > 32 ? device[..32] : device;
        detail = string.IsNullOrWhiteSpace(detail) ? null : detail.Length > 500 ? detail[..500] : detail;
        string client = ClientId;
        if (!passed)
            HubLog.DeviceCheckFailed(logger, client, device, detail ?? "no reason given");
        await Notify(new ClientEvent
        {
            ExperimentId = experimentId,
            ClientId = client,
            Kind = ClientEvent.DeviceCheck,
            Detail = passed ? $"{device}: passed" : $"{device}: FAILED: {detail ?? "no reason given"}",
        }).ConfigureAwait(false);
    }

    /// <summary>
    /// The model fingerprint a participant holds after applying a round; disagreement is flagged to observers.
    /// Only the round's own participants report: nobody else can make a round look disputed.
    /// </summary>
    [Authorize(Policy = Policies.Client)]
    public async Task<bool> ReportFingerprint(string experimentId, int round, string fingerprint)
    {
        if (string.IsNullOrEmpty(fingerprint) || fingerprint.Length != 64 || !fingerprint.All(char.IsAsciiHexDigitLower))
            throw new HubException("A fingerprint is 64 lower-case hex digits.");
        await RequireExperimentAsync(experimentId).ConfigureAwait(false);
        string client = ClientId;
        bool agrees;
        using (await gate.EnterAsync().ConfigureAwait(false))
        {
            var state = log.GetSubmissionState(experimentId, round, client);
            if (state is not { Round: RoundState.Completed })
                throw new HubException($"Round {round} of '{experimentId}' has no global update to fingerprint.");
            if (state.Value.Assignment is null)
                throw new HubException($"Only the clients assigned to round {round} report its fingerprint.");
            log.RecordFingerprint(new FingerprintRecord(experimentId, round, client, fingerprint, clock.GetUtcNow()));
            agrees = log.GetFingerprints(experimentId, round).Select(f => f.Fingerprint).Distinct().Count() == 1;
        }
        await Notify(new ClientEvent
        {
            ExperimentId = experimentId,
            Round = round,
            ClientId = client,
            Kind = ClientEvent.Fingerprint,
            Detail = agrees ? fingerprint : $"MISMATCH {fingerprint}",
        }).ConfigureAwait(false);
        return agrees;
    }

    public override async Task OnDisconnectedAsync(Exception? exception)
    {
        connections.Remove(Context.ConnectionId);
        (string ClientId, string ExperimentId)? gone = null;
        using (await gate.EnterAsync().ConfigureAwait(false))
        {
            if (participants.Leave(Context.ConnectionId) is { } joined && !participants.IsConnected(joined.ClientId, joined.ExperimentId))
                gone = joined;
        }
        if (gone is { } left)
        {
            await Notify(new ClientEvent { ExperimentId = left.ExperimentId, ClientId = left.ClientId, Kind = ClientEvent.Left, Detail = exception?.Message })
                .ConfigureAwait(false);
        }
        await base.OnDisconnectedAsync(exception).ConfigureAwait(false);
    }

    private async Task<ExperimentRecord> RequireExperimentAsync(string experimentId)
    {
        if (!CallerInput.IsId(experimentId))
            throw new HubException($"Not a valid experiment id: {CallerInput.DescribeInvalidId(experimentId)}.");
        using (await gate.EnterAsync().ConfigureAwait(false))
            return log.GetExperiment(experimentId) ?? throw new HubException($"No experiment '{experimentId}'.");
    }

    /// <summary>Why this client cannot answer this round now (null: it can), and the round's deadline, from one query.</summary>
    private (string? Refusal, DateTimeOffset Deadline) NotAnswerable(string experimentId, int round, string client)
    {
        var state = log.GetSubmissionState(experimentId, round, client);
        return (state switch
        {
            null => $"round {round} has not opened",
            { Assignment: null } => $"this client is not assigned to round {round}",
            { Round: not RoundState.Open } => $"round {round} is closed (late packet)",
            { Assignment: not AssignmentState.Assigned } => $"a packet for round {round} was already received from this client (replay)",
            _ => null,
        }, state?.DeadlineUtc ?? default);
    }

    private async Task<SubmitResult> Submit(string experimentId, int round, byte[]? packet)
    {
        long bytes = packet?.LongLength ?? 0;
        if (!CallerInput.IsId(experimentId))
            return await Reject(null, round, bytes, CallerInput.DescribeInvalidId(experimentId)).ConfigureAwait(false);
        ExperimentAlgorithm? found;
        using (await gate.EnterAsync().ConfigureAwait(false))
            found = algorithms.Get(experimentId);
        if (found is not { } experiment)
            return await Reject(experimentId, round, bytes, $"no experiment '{experimentId}'").ConfigureAwait(false);
        if (experiment.Private is { Secure: true })
            return await Reject(experimentId, round, bytes, "this experiment uses secure aggregation: a plain packet would show the coordinator the client's update; send a masked input").ConfigureAwait(false);
        var (update, reason) = door.Inspect(experiment.Descriptor, experiment.Algorithm, round, packet);
        if (update is null || packet is null)
            return await Reject(experimentId, round, bytes, reason ?? "empty packet").ConfigureAwait(false);
        string client = ClientId;
        var digest = Convert.ToHexStringLower(SHA256.HashData(packet));
        PacketOutcome outcome;
        using (await gate.EnterAsync().ConfigureAwait(false))
        {
            // Revocation cuts live connections; a call already in flight is stopped here.
            if (clients.GetClient(client) is not { Revoked: false })
                throw new HubException("This client has been revoked.");
            outcome = log.RecordPacket(experimentId, round, client, packet, digest, update.Stats.Loss, clock.GetUtcNow());
            if (outcome == PacketOutcome.Accepted)
                ownership.Nudge(experimentId);
        }
        if (outcome != PacketOutcome.Accepted)
        {
            return await Reject(experimentId, round, bytes, outcome switch
            {
                PacketOutcome.Duplicate => $"a packet for round {round} was already received from this client (replay)",
                PacketOutcome.RoundClosed => $"round {round} is closed (late packet)",
                _ => $"this client is not assigned to round {round}",
            }).ConfigureAwait(false);
        }
        CoordinatorMetrics.PacketsAccepted.Add(1);
        CoordinatorMetrics.PacketBytes.Add(bytes);
        await Notify(new ClientEvent
        {
            ExperimentId = experimentId,
            Round = round,
            ClientId = client,
            Kind = ClientEvent.Received,
            Bytes = bytes,
            TrainLoss = update.Stats.Loss,
        }).ConfigureAwait(false);
        return new SubmitResult { Accepted = true };
    }

    private async Task<SubmitResult> Reject(string? experimentId, int round, long bytes, string reason)
    {
        if (experimentId is not null && !CallerInput.IsId(experimentId))
        {
            reason = CallerInput.DescribeInvalidId(experimentId);
            experimentId = null;
        }
        await rejections.WriteAsync(ClientId, Context.User?.FindFirstValue(ClaimTypes.Name), experimentId, round, bytes, reason).ConfigureAwait(false);
        return new SubmitResult { Accepted = false, Reason = reason.Length > RejectionWriter.MaxReasonChars ? reason[..RejectionWriter.MaxReasonChars] : reason };
    }

    /// <summary>
    /// Tells the experiment's observers. Best effort: what the event reports is in the round log already, and
    /// a slow backplane must not turn an accepted packet into an error for its sender.
    /// </summary>
    private async Task Notify(ClientEvent e)
    {
        e.ClientName ??= Context.User?.FindFirstValue(ClaimTypes.Name);
        if (e.AtUtc == default)
            e.AtUtc = clock.GetUtcNow();
        try
        {
            await Clients.Group(ObserverGroup(e.ExperimentId)).SendAsync(RoundsProtocol.ClientEvent, e).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is TimeoutException or IOException or StackExchange.Redis.RedisException)
        {
            HubLog.NotifyFailed(logger, ex, e.Kind, e.ExperimentId);
        }
    }
}

internal static partial class HubLog
{
    [LoggerMessage(EventId = 1, Level = LogLevel.Warning, Message = "Rejected packet from {Client} for {Experiment} round {Round}: {Reason}")]
    public static partial void Rejected(ILogger logger, string client, string experiment, int round, string reason);

    [LoggerMessage(EventId = 2, Level = LogLevel.Warning, Message = "Client {Client} failed its device check on {Device} and does not join: {Detail}")]
    public static partial void DeviceCheckFailed(ILogger logger, string client, string device, string detail);

    [LoggerMessage(EventId = 3, Level = LogLevel.Warning, Message = "Could not tell the observers of {Experiment} about a {Kind} client event")]
    public static partial void NotifyFailed(ILogger logger, Exception exception, string kind, string experiment);
}
