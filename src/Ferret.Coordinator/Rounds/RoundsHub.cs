using System.Buffers;
using System.Security.Claims;
using System.Security.Cryptography;
using System.Text.Json;
using Ferret.Coordinator.Persistence;
using Ferret.Coordinator.ScaleOut;
using Ferret.Coordinator.Security;
using Ferret.Core.Packets;
using Ferret.Core.Protocol;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.SignalR;
using Microsoft.Extensions.Options;

namespace Ferret.Coordinator.Rounds;

/// <summary>
/// The SignalR hub (MessagePack protocol) at <c>/hubs/rounds</c>. Clients join experiments, submit packets
/// and report fingerprints; observers subscribe to an experiment's live events. Every packet is checked at
/// the door (size, format, sender assigned to that open round, one per client per round, then the
/// algorithm's own checks); a bad packet gets a reason back, is logged and counted, and never disturbs the
/// round. Packets over one hub message stream in chunks (<see cref="SubmitUpdateStream"/>). Any instance takes
/// packets: the round log decides one per client per round, and the experiment's owner is nudged to look.
/// </summary>
[Authorize(Policy = Policies.Observer)]
public sealed class RoundsHub(IRoundLog log, IClientRegistry clients, ExperimentAlgorithms algorithms, IParticipants participants,
    IExperimentOwnership ownership, DatabaseGate gate, IOptions<CoordinatorOptions> options, TimeProvider clock, ILogger<RoundsHub> logger) : Hub
{
    public const string Path = RoundsProtocol.Path;

    private const int MaxCapabilitiesChars = 8 * 1024;

    /// <summary>Everyone taking part in or watching an experiment: its round events.</summary>
    public static string Group(string experimentId) => "experiment:" + experimentId;

    /// <summary>Those watching an experiment: its client events too (clients do not get each other's, which would grow with the square of their number).</summary>
    public static string ObserverGroup(string experimentId) => "observers:" + experimentId;

    private string ClientId => Context.User?.FindFirstValue(ClaimTypes.NameIdentifier) ?? throw new HubException("Not authenticated.");

    private bool IsClient => Context.User?.IsInRole(BearerAuthenticationHandler.ClientRole) == true;

    /// <summary>Receives live events of an experiment: round events and every client's.</summary>
    public async Task Subscribe(string experimentId)
    {
        using (await gate.EnterAsync().ConfigureAwait(false))
        {
            if (log.GetExperiment(experimentId) is null)
                throw new HubException($"No experiment '{experimentId}'.");
        }
        await Groups.AddToGroupAsync(Context.ConnectionId, Group(experimentId)).ConfigureAwait(false);
        await Groups.AddToGroupAsync(Context.ConnectionId, ObserverGroup(experimentId)).ConfigureAwait(false);
    }

    /// <summary>
    /// An enrolled client takes part in an experiment: it becomes eligible for its rounds, receives its
    /// events, and learns the descriptor, the last completed round and any assignment still waiting for it
    /// (after a reconnect or a coordinator restart).
    /// </summary>
    public async Task<JoinResult> Join(string experimentId, string? capabilitiesJson)
    {
        if (!IsClient)
            throw new HubException("Only enrolled clients join experiments; observers subscribe.");
        ExperimentRecord? experiment;
        using (await gate.EnterAsync().ConfigureAwait(false))
            experiment = log.GetExperiment(experimentId) ?? throw new HubException($"No experiment '{experimentId}'.");
        string client = ClientId;
        if (!string.IsNullOrEmpty(capabilitiesJson))
        {
            if (capabilitiesJson.Length > MaxCapabilitiesChars)
                throw new HubException($"Capabilities of {capabilitiesJson.Length} characters exceed {MaxCapabilitiesChars}.");
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
        using (await gate.EnterAsync().ConfigureAwait(false))
        {
            var progress = log.GetProgress(experimentId);
            lastCompleted = progress.LastCompleted;
            if (progress.Open is { } open
                && log.GetAssignments(experimentId, open.Round).Any(a => a.ClientId == client && a.State == AssignmentState.Assigned))
            {
                assignment = new RoundAssignment { ExperimentId = experimentId, Round = open.Round, BaseRound = lastCompleted, DeadlineUtc = open.DeadlineUtc };
            }
            participants.Join(Context.ConnectionId, client, experimentId);
            ownership.Nudge(experimentId);
        }
        await Notify(new ClientEvent { ExperimentId = experimentId, Round = lastCompleted, ClientId = client, Kind = ClientEvent.Joined }).ConfigureAwait(false);
        return new JoinResult { Descriptor = experiment.Descriptor, State = experiment.State.ToString(), LastCompletedRound = lastCompleted, OpenAssignment = assignment };
    }

    /// <summary>A client's packet for a round in one message, as MessagePack bytes of a ClientUpdate.</summary>
    public Task<SubmitResult> SubmitUpdate(string experimentId, int round, byte[] packet)
    {
        long limit = options.Value.MaxMessageBytes;
        return packet is not null && packet.LongLength > limit
            ? Reject(experimentId, round, packet.LongLength, $"packet of {packet.LongLength} bytes exceeds the message limit of {limit}; stream it in chunks")
            : Submit(experimentId, round, packet);
    }

    /// <summary>A large packet (a full delta) streamed in chunks; the whole is checked exactly like a one-message packet.</summary>
    public async Task<SubmitResult> SubmitUpdateStream(string experimentId, int round, IAsyncEnumerable<byte[]> chunks)
    {
        ArgumentNullException.ThrowIfNull(chunks);
        long limit = options.Value.MaxPacketBytes;
        var buffer = new ArrayBufferWriter<byte>();
        long total = 0;
        await foreach (var chunk in chunks.ConfigureAwait(false))
        {
            total += chunk.LongLength;
            if (total <= limit)
                buffer.Write(chunk);
        }
        if (total > limit)
            return await Reject(experimentId, round, total, $"streamed packet of {total} bytes exceeds the limit of {limit}").ConfigureAwait(false);
        return await Submit(experimentId, round, buffer.WrittenSpan.ToArray()).ConfigureAwait(false);
    }

    /// <summary>A client could not train its assignment (out of memory, bad data): the round stops waiting for it.</summary>
    public async Task ReportFailure(string experimentId, int round, string reason)
    {
        if (!IsClient)
            throw new HubException("Only enrolled clients report failures.");
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

    /// <summary>The model fingerprint a participant holds after applying a round; disagreement is flagged to observers.</summary>
    public async Task<bool> ReportFingerprint(string experimentId, int round, string fingerprint)
    {
        if (string.IsNullOrEmpty(fingerprint) || fingerprint.Length != 64 || !fingerprint.All(char.IsAsciiHexDigitLower))
            throw new HubException("A fingerprint is 64 lower-case hex digits.");
        string client = ClientId;
        bool agrees;
        using (await gate.EnterAsync().ConfigureAwait(false))
        {
            if (log.GetRound(experimentId, round) is not { State: RoundState.Completed })
                throw new HubException($"Round {round} of '{experimentId}' has no global update to fingerprint.");
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

    private async Task<SubmitResult> Submit(string experimentId, int round, byte[]? packet)
    {
        if (!IsClient)
            throw new HubException("Only enrolled clients submit packets.");
        long bytes = packet?.LongLength ?? 0;
        if (packet is null || packet.Length == 0)
            return await Reject(experimentId, round, bytes, "empty packet").ConfigureAwait(false);
        (Core.Algorithms.ExperimentDescriptor Descriptor, Core.Algorithms.IFederatedAlgorithm Algorithm)? found;
        using (await gate.EnterAsync().ConfigureAwait(false))
            found = algorithms.Get(experimentId);
        if (found is not { } experiment)
            return await Reject(experimentId, round, bytes, $"no experiment '{experimentId}'").ConfigureAwait(false);
        ClientUpdate update;
        try
        {
            update = Wire.Deserialize<ClientUpdate>(packet);
        }
        catch (InvalidDataException e)
        {
            return await Reject(experimentId, round, bytes, $"malformed packet: {e.Message}").ConfigureAwait(false);
        }
        var verdict = experiment.Algorithm.Check(update, round);
        if (!verdict.Accepted)
            return await Reject(experimentId, round, bytes, verdict.Reason!).ConfigureAwait(false);
        string client = ClientId;
        var digest = Convert.ToHexStringLower(SHA256.HashData(packet));
        PacketOutcome outcome;
        using (await gate.EnterAsync().ConfigureAwait(false))
        {
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

    private async Task<SubmitResult> Reject(string experimentId, int round, long bytes, string reason)
    {
        if (!IsClient)
            throw new HubException("Only enrolled clients submit packets.");
        string client = ClientId;
        var at = clock.GetUtcNow(); // the same instant in the log and the event, so a dashboard can tell them apart from new ones
        using (await gate.EnterAsync().ConfigureAwait(false))
            log.RecordRejection(experimentId, round, client, reason, bytes, at);
        CoordinatorMetrics.PacketsRejected.Add(1);
        HubLog.Rejected(logger, client, experimentId, round, reason);
        await Notify(new ClientEvent { ExperimentId = experimentId, Round = round, ClientId = client, Kind = ClientEvent.Rejected, Bytes = bytes, Detail = reason, AtUtc = at })
            .ConfigureAwait(false);
        return new SubmitResult { Accepted = false, Reason = reason };
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
