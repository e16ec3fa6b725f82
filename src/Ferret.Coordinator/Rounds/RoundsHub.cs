using System.Buffers;
using System.Security.Claims;
using System.Security.Cryptography;
using System.Text.Json;
using Ferret.Coordinator.Persistence;
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
/// round. Packets over one hub message stream in chunks (<see cref="SubmitUpdateStream"/>).
/// </summary>
[Authorize(Policy = Policies.Observer)]
public sealed class RoundsHub(RoundLog log, ExperimentAlgorithms algorithms, Participants participants, RoundEngine engine,
    IOptions<CoordinatorOptions> options, TimeProvider clock, ILogger<RoundsHub> logger) : Hub
{
    public const string Path = RoundsProtocol.Path;

    private const int MaxCapabilitiesChars = 8 * 1024;

    public static string Group(string experimentId) => "experiment:" + experimentId;

    private string ClientId => Context.User?.FindFirstValue(ClaimTypes.NameIdentifier) ?? throw new HubException("Not authenticated.");

    private bool IsClient => Context.User?.IsInRole(BearerAuthenticationHandler.ClientRole) == true;

    /// <summary>Receives live events of an experiment.</summary>
    public async Task Subscribe(string experimentId)
    {
        if (log.GetExperiment(experimentId) is null)
            throw new HubException($"No experiment '{experimentId}'.");
        await Groups.AddToGroupAsync(Context.ConnectionId, Group(experimentId)).ConfigureAwait(false);
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
        if (log.GetExperiment(experimentId) is not { } experiment)
            throw new HubException($"No experiment '{experimentId}'.");
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
            log.SetClientCapabilities(client, capabilitiesJson);
        }
        await Groups.AddToGroupAsync(Context.ConnectionId, Group(experimentId)).ConfigureAwait(false);
        var progress = log.GetProgress(experimentId);
        int lastCompleted = progress.LastCompleted;
        RoundAssignment? assignment = null;
        if (progress.Open is { } open
            && log.GetAssignments(experimentId, open.Round).Any(a => a.ClientId == client && a.State == AssignmentState.Assigned))
        {
            assignment = new RoundAssignment { ExperimentId = experimentId, Round = open.Round, BaseRound = lastCompleted, DeadlineUtc = open.DeadlineUtc };
        }
        participants.Join(Context.ConnectionId, client, experimentId);
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
        if (!log.MarkAssignmentFailed(experimentId, round, client, reason))
            throw new HubException($"This client has no open assignment in round {round} of '{experimentId}'.");
        engine.Wake();
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
        if (log.GetRound(experimentId, round) is not { State: RoundState.Completed })
            throw new HubException($"Round {round} of '{experimentId}' has no global update to fingerprint.");
        string client = ClientId;
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
        if (participants.Leave(Context.ConnectionId) is { } left && !participants.IsConnected(left.ClientId, left.ExperimentId))
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
        if (algorithms.Get(experimentId) is not { } experiment)
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

    private async Task<SubmitResult> Reject(string experimentId, int round, long bytes, string reason)
    {
        if (!IsClient)
            throw new HubException("Only enrolled clients submit packets.");
        string client = ClientId;
        log.RecordRejection(experimentId, round, client, reason, bytes, clock.GetUtcNow());
        CoordinatorMetrics.PacketsRejected.Add(1);
        HubLog.Rejected(logger, client, experimentId, round, reason);
        await Notify(new ClientEvent { ExperimentId = experimentId, Round = round, ClientId = client, Kind = ClientEvent.Rejected, Bytes = bytes, Detail = reason })
            .ConfigureAwait(false);
        return new SubmitResult { Accepted = false, Reason = reason };
    }

    private Task Notify(ClientEvent e) => Clients.Group(Group(e.ExperimentId)).SendAsync(RoundsProtocol.ClientEvent, e);
}

internal static partial class HubLog
{
    [LoggerMessage(EventId = 1, Level = LogLevel.Warning, Message = "Rejected packet from {Client} for {Experiment} round {Round}: {Reason}")]
    public static partial void Rejected(ILogger logger, string client, string experiment, int round, string reason);

    [LoggerMessage(EventId = 2, Level = LogLevel.Warning, Message = "Client {Client} failed its device check on {Device} and does not join: {Detail}")]
    public static partial void DeviceCheckFailed(ILogger logger, string client, string device, string detail);
}
