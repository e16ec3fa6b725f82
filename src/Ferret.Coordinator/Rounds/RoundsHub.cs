using System.Security.Claims;
using System.Security.Cryptography;
using Ferret.Coordinator.Persistence;
using Ferret.Coordinator.Security;
using Ferret.Core.Packets;
using MessagePack;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.SignalR;
using Microsoft.Extensions.Options;

namespace Ferret.Coordinator.Rounds;

/// <summary>The answer to a submitted packet: accepted, or rejected with the reason.</summary>
[MessagePackObject]
public sealed class SubmitResult
{
    [Key(0)]
    public bool Accepted { get; set; }

    [Key(1)]
    public string? Reason { get; set; }
}

/// <summary>A client's status change, pushed to the experiment's observers.</summary>
[MessagePackObject]
public sealed class ClientEvent
{
    [Key(0)]
    public string ExperimentId { get; set; } = "";

    [Key(1)]
    public int Round { get; set; }

    [Key(2)]
    public string ClientId { get; set; } = "";

    /// <summary><c>received</c>, <c>rejected</c> or <c>fingerprint</c>.</summary>
    [Key(3)]
    public string Kind { get; set; } = "";

    [Key(4)]
    public long Bytes { get; set; }

    [Key(5)]
    public double? TrainLoss { get; set; }

    [Key(6)]
    public string? Detail { get; set; }
}

/// <summary>
/// The SignalR hub (MessagePack protocol) at <c>/hubs/rounds</c>. Clients submit packets and report
/// fingerprints; observers subscribe to an experiment's live events. Every packet is checked at the door
/// (size, format, sender assigned to that open round, one per client per round, then the algorithm's own
/// checks); a bad packet gets a reason back, is logged and counted, and never disturbs the round.
/// </summary>
[Authorize(Policy = Policies.Observer)]
public sealed class RoundsHub(RoundLog log, ExperimentAlgorithms algorithms, IOptions<CoordinatorOptions> options, TimeProvider clock, ILogger<RoundsHub> logger) : Hub
{
    public const string Path = "/hubs/rounds";

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

    /// <summary>A client's packet for a round, as MessagePack bytes of a ClientUpdate.</summary>
    public async Task<SubmitResult> SubmitUpdate(string experimentId, int round, byte[] packet)
    {
        if (!IsClient)
            throw new HubException("Only enrolled clients submit packets.");
        string client = ClientId;
        var now = clock.GetUtcNow();
        long bytes = packet?.LongLength ?? 0;
        async Task<SubmitResult> Reject(string reason)
        {
            log.RecordRejection(experimentId, round, client, reason, bytes, now);
            HubLog.Rejected(logger, client, experimentId, round, reason);
            await Clients.Group(Group(experimentId)).SendAsync("ClientEvent", new ClientEvent
            {
                ExperimentId = experimentId,
                Round = round,
                ClientId = client,
                Kind = "rejected",
                Bytes = bytes,
                Detail = reason,
            }).ConfigureAwait(false);
            return new SubmitResult { Accepted = false, Reason = reason };
        }

        if (packet is null || packet.Length == 0)
            return await Reject("empty packet").ConfigureAwait(false);
        if (bytes > options.Value.MaxMessageBytes)
            return await Reject($"packet of {bytes} bytes exceeds the limit of {options.Value.MaxMessageBytes}").ConfigureAwait(false);
        if (algorithms.Get(experimentId) is not { } experiment)
            return await Reject($"no experiment '{experimentId}'").ConfigureAwait(false);
        ClientUpdate update;
        try
        {
            update = Wire.Deserialize<ClientUpdate>(packet);
        }
        catch (InvalidDataException e)
        {
            return await Reject($"malformed packet: {e.Message}").ConfigureAwait(false);
        }
        var verdict = experiment.Algorithm.Check(update, round);
        if (!verdict.Accepted)
            return await Reject(verdict.Reason!).ConfigureAwait(false);
        var outcome = log.RecordPacket(experimentId, round, client, packet, Convert.ToHexStringLower(SHA256.HashData(packet)), update.Stats.Loss, now);
        if (outcome != PacketOutcome.Accepted)
        {
            return await Reject(outcome switch
            {
                PacketOutcome.Duplicate => $"a packet for round {round} was already received from this client (replay)",
                PacketOutcome.RoundClosed => $"round {round} is closed (late packet)",
                _ => $"this client is not assigned to round {round}",
            }).ConfigureAwait(false);
        }
        await Clients.Group(Group(experimentId)).SendAsync("ClientEvent", new ClientEvent
        {
            ExperimentId = experimentId,
            Round = round,
            ClientId = client,
            Kind = "received",
            Bytes = bytes,
            TrainLoss = update.Stats.Loss,
        }).ConfigureAwait(false);
        return new SubmitResult { Accepted = true };
    }

    /// <summary>The model fingerprint a participant holds after applying a round; disagreement is flagged to observers.</summary>
    public async Task<bool> ReportFingerprint(string experimentId, int round, string fingerprint)
    {
        if (string.IsNullOrEmpty(fingerprint) || fingerprint.Length != 64)
            throw new HubException("A fingerprint is 64 lower-case hex digits.");
        string client = ClientId;
        log.RecordFingerprint(new FingerprintRecord(experimentId, round, client, fingerprint, clock.GetUtcNow()));
        bool agrees = log.GetFingerprints(experimentId, round).Select(f => f.Fingerprint).Distinct().Count() == 1;
        await Clients.Group(Group(experimentId)).SendAsync("ClientEvent", new ClientEvent
        {
            ExperimentId = experimentId,
            Round = round,
            ClientId = client,
            Kind = "fingerprint",
            Detail = agrees ? fingerprint : $"MISMATCH {fingerprint}",
        }).ConfigureAwait(false);
        return agrees;
    }
}

internal static partial class HubLog
{
    [LoggerMessage(EventId = 1, Level = LogLevel.Warning, Message = "Rejected packet from {Client} for {Experiment} round {Round}: {Reason}")]
    public static partial void Rejected(ILogger logger, string client, string experiment, int round, string reason);
}
