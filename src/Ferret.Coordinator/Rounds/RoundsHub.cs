using System.Collections.Concurrent;
using System.Security.Claims;
using System.Security.Cryptography;
using System.Text.Json;
using Ferret.Coordinator.Persistence;
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
/// </summary>
[Authorize(Policy = Policies.Observer)]
public sealed class RoundsHub(RoundLog log, ExperimentAlgorithms algorithms, Participants participants, RoundEngine engine, PacketDoor door,
    RejectionWriter rejections, ClientConnections connections, IOptions<CoordinatorOptions> options, TimeProvider clock) : Hub
{
    public const string Path = RoundsProtocol.Path;

    /// <summary>Clients with a streamed upload in progress: one at a time each, so a client cannot multiply what it makes the coordinator hold.</summary>
    private static readonly ConcurrentDictionary<string, byte> Uploading = new(StringComparer.Ordinal);

    public static string Group(string experimentId) => "experiment:" + experimentId;

    private string ClientId => Context.User?.FindFirstValue(ClaimTypes.NameIdentifier) ?? throw new HubException("Not authenticated.");

    private bool IsClient => Context.User?.IsInRole(BearerAuthenticationHandler.ClientRole) == true;

    public override Task OnConnectedAsync()
    {
        if (IsClient)
            connections.Add(ClientId, Context);
        return base.OnConnectedAsync();
    }

    /// <summary>Receives live events of an experiment.</summary>
    [Authorize(Policy = Policies.Observer)]
    public async Task Subscribe(string experimentId)
    {
        RequireExperiment(experimentId);
        await Groups.AddToGroupAsync(Context.ConnectionId, Group(experimentId)).ConfigureAwait(false);
    }

    /// <summary>
    /// An enrolled client takes part in an experiment: it becomes eligible for its rounds, receives its
    /// events, and learns the descriptor, the last completed round and any assignment still waiting for it
    /// (after a reconnect or a coordinator restart).
    /// </summary>
    [Authorize(Policy = Policies.Client)]
    public async Task<JoinResult> Join(string experimentId, string? capabilitiesJson)
    {
        var experiment = RequireExperiment(experimentId);
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
            log.SetClientCapabilities(client, capabilitiesJson);
        }
        await Groups.AddToGroupAsync(Context.ConnectionId, Group(experimentId)).ConfigureAwait(false);
        var progress = log.GetProgress(experimentId);
        int lastCompleted = progress.LastCompleted;
        RoundAssignment? assignment = null;
        if (progress.Open is { } open && log.GetSubmissionState(experimentId, open.Round, client)?.Assignment == AssignmentState.Assigned)
            assignment = new RoundAssignment { ExperimentId = experimentId, Round = open.Round, BaseRound = lastCompleted, DeadlineUtc = open.DeadlineUtc };
        participants.Join(Context.ConnectionId, client, experimentId);
        await Notify(new ClientEvent { ExperimentId = experimentId, Round = lastCompleted, ClientId = client, Kind = ClientEvent.Joined }).ConfigureAwait(false);
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
        if (!CallerInput.IsId(experimentId) || algorithms.Get(experimentId) is not { } experiment)
        {
            await DrainAsync(chunks, options.Value.MaxMessageBytes).ConfigureAwait(false);
            return await Submit(experimentId, round, null).ConfigureAwait(false);
        }
        string client = ClientId;
        long limit = Math.Min(options.Value.MaxPacketBytes, PacketLimits.MaxPacketBytes(experiment.Descriptor));
        string? refusal = NotAnswerable(experimentId, round, client, out var deadline);
        if (refusal is null && !Uploading.TryAdd(client, 0))
            refusal = "another upload from this client is still in progress";
        if (refusal is not null)
        {
            long drained = await DrainAsync(chunks, limit).ConfigureAwait(false);
            return await Reject(experimentId, round, drained, refusal).ConfigureAwait(false);
        }
        try
        {
            var left = deadline - clock.GetUtcNow();
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
        RequireExperiment(experimentId);
        string client = ClientId;
        reason = string.IsNullOrWhiteSpace(reason) ? "unspecified" : reason.Length > 500 ? reason[..500] : reason;
        if (!log.MarkAssignmentFailed(experimentId, round, client, reason))
            throw new HubException($"This client has no open assignment in round {round} of '{experimentId}'.");
        engine.Wake();
        await Notify(new ClientEvent { ExperimentId = experimentId, Round = round, ClientId = client, Kind = ClientEvent.Failed, Detail = reason }).ConfigureAwait(false);
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
        RequireExperiment(experimentId);
        string client = ClientId;
        var state = log.GetSubmissionState(experimentId, round, client);
        if (state is not { Round: RoundState.Completed })
            throw new HubException($"Round {round} of '{experimentId}' has no global update to fingerprint.");
        if (state.Value.Assignment is null)
            throw new HubException($"Only the clients assigned to round {round} report its fingerprint.");
        log.RecordFingerprint(new FingerprintRecord(experimentId, round, client, fingerprint, clock.GetUtcNow()));
        bool agrees = log.GetFingerprints(experimentId, round).Select(f => f.Fingerprint).Distinct().Count() == 1;
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
        if (participants.Leave(Context.ConnectionId) is { } left && !participants.IsConnected(left.ClientId, left.ExperimentId))
        {
            await Notify(new ClientEvent { ExperimentId = left.ExperimentId, ClientId = left.ClientId, Kind = ClientEvent.Left, Detail = exception?.Message })
                .ConfigureAwait(false);
        }
        await base.OnDisconnectedAsync(exception).ConfigureAwait(false);
    }

    private ExperimentRecord RequireExperiment(string experimentId)
    {
        if (!CallerInput.IsId(experimentId))
            throw new HubException($"Not a valid experiment id: {CallerInput.DescribeInvalidId(experimentId)}.");
        return log.GetExperiment(experimentId) ?? throw new HubException($"No experiment '{experimentId}'.");
    }

    /// <summary>Why this client cannot answer this round now (null: it can), from one query.</summary>
    private string? NotAnswerable(string experimentId, int round, string client, out DateTimeOffset deadline)
    {
        var state = log.GetSubmissionState(experimentId, round, client);
        deadline = state?.DeadlineUtc ?? default;
        return state switch
        {
            null => $"round {round} has not opened",
            { Assignment: null } => $"this client is not assigned to round {round}",
            { Round: not RoundState.Open } => $"round {round} is closed (late packet)",
            { Assignment: not AssignmentState.Assigned } => $"a packet for round {round} was already received from this client (replay)",
            _ => null,
        };
    }

    private async Task<SubmitResult> Submit(string experimentId, int round, byte[]? packet)
    {
        long bytes = packet?.LongLength ?? 0;
        if (!CallerInput.IsId(experimentId))
            return await Reject(null, round, bytes, $"{CallerInput.DescribeInvalidId(experimentId)}").ConfigureAwait(false);
        if (algorithms.Get(experimentId) is not { } experiment)
            return await Reject(experimentId, round, bytes, $"no experiment '{experimentId}'").ConfigureAwait(false);
        var (update, reason) = door.Inspect(experiment.Descriptor, experiment.Algorithm, round, packet);
        if (update is null || packet is null)
            return await Reject(experimentId, round, bytes, reason ?? "empty packet").ConfigureAwait(false);
        string client = ClientId;
        if (log.GetClient(client) is not { Revoked: false })
            throw new HubException("This client has been revoked.");
        var outcome = log.RecordPacket(experimentId, round, client, packet, Convert.ToHexStringLower(SHA256.HashData(packet)), update.Stats.Loss, clock.GetUtcNow());
        if (outcome != PacketOutcome.Accepted)
        {
            return await Reject(experimentId, round, bytes, outcome switch
            {
                PacketOutcome.Duplicate => $"a packet for round {round} was already received from this client (replay)",
                PacketOutcome.RoundClosed => $"round {round} is closed (late packet)",
                _ => $"this client is not assigned to round {round}",
            }).ConfigureAwait(false);
        }
        engine.Wake();
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

    private Task Notify(ClientEvent e)
    {
        e.ClientName ??= Context.User?.FindFirstValue(ClaimTypes.Name);
        if (e.AtUtc == default)
            e.AtUtc = clock.GetUtcNow();
        return Clients.Group(Group(e.ExperimentId)).SendAsync(RoundsProtocol.ClientEvent, e);
    }
}
