using System.Security.Cryptography;
using Ferret.Coordinator.Persistence;
using Ferret.Coordinator.Privacy;
using Ferret.Coordinator.Security;
using Ferret.Core.Protocol;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.SignalR;

namespace Ferret.Coordinator.Rounds;

/// <summary>
/// The secure-aggregation stages on the rounds hub. Each message is checked at the door like a packet (the
/// stage must be open, the sender a participant with a well-formed message that matches what the protocol
/// expects of it), then stored; a refused one gets its reason back and is logged and counted as a rejection.
/// </summary>
public sealed partial class RoundsHub
{
    /// <summary>Stage 0: the client's two public keys for the round (MessagePack <c>AdvertisedKeys</c>).</summary>
    [Authorize(Policy = Policies.Client)]
    public Task<SubmitResult> AdvertiseKeys(string experimentId, int round, byte[] keys) => Stage(PrivateStage.AdvertiseKeys, experimentId, round, keys);

    /// <summary>Stage 1: the client's encrypted shares (MessagePack <c>ShareKeysResponse</c>).</summary>
    [Authorize(Policy = Policies.Client)]
    public Task<SubmitResult> ShareKeys(string experimentId, int round, byte[] shares) => Stage(PrivateStage.ShareKeys, experimentId, round, shares);

    /// <summary>Stage 3: the client's revealed shares (MessagePack <c>UnmaskResponse</c>).</summary>
    [Authorize(Policy = Policies.Client)]
    public Task<SubmitResult> Unmask(string experimentId, int round, byte[] shares) => Stage(PrivateStage.Unmasking, experimentId, round, shares);

    /// <summary>Stage 2: the client's masked input (MessagePack <c>MaskedInput</c>); it becomes the client's packet of the round.</summary>
    [Authorize(Policy = Policies.Client)]
    public async Task<SubmitResult> SubmitMaskedInput(string experimentId, int round, byte[] input)
    {
        long bytes = input?.LongLength ?? 0;
        if (!CallerInput.IsId(experimentId))
            return await Reject(null, round, bytes, CallerInput.DescribeInvalidId(experimentId)).ConfigureAwait(false);
        if (input is null || input.Length == 0)
            return await Reject(experimentId, round, bytes, "empty masked input").ConfigureAwait(false);
        if (input.LongLength > options.Value.MaxMessageBytes)
            return await Reject(experimentId, round, bytes, $"masked input of {input.LongLength} bytes exceeds the message limit of {options.Value.MaxMessageBytes}").ConfigureAwait(false);
        string client = ClientId;
        string digest = Convert.ToHexStringLower(SHA256.HashData(input));
        string? reason;
        PacketOutcome outcome = PacketOutcome.NotAssigned;
        using (await gate.EnterAsync().ConfigureAwait(false))
        {
            reason = algorithms.Get(experimentId) is not { } experiment ? $"no experiment '{experimentId}'" : secure.CheckMaskedInput(experiment, round, client, input);
            // Revocation cuts live connections; a call already in flight is stopped here.
            if (clients.GetClient(client) is not { Revoked: false })
                throw new HubException("This client has been revoked.");
            if (reason is null)
            {
                outcome = log.RecordPacket(experimentId, round, client, input, digest, null, clock.GetUtcNow());
                if (outcome == PacketOutcome.Accepted)
                    ownership.Nudge(experimentId);
            }
        }
        if (reason is not null)
            return await Reject(experimentId, round, bytes, reason).ConfigureAwait(false);
        if (outcome != PacketOutcome.Accepted)
        {
            return await Reject(experimentId, round, bytes, outcome switch
            {
                PacketOutcome.Duplicate => $"a masked input for round {round} was already received from this client, or its time is over",
                PacketOutcome.RoundClosed => $"round {round} is closed (late masked input)",
                _ => $"this client is not assigned to round {round}",
            }).ConfigureAwait(false);
        }
        CoordinatorMetrics.PacketsAccepted.Add(1);
        CoordinatorMetrics.PacketBytes.Add(bytes);
        await Notify(new ClientEvent { ExperimentId = experimentId, Round = round, ClientId = client, Kind = ClientEvent.Received, Bytes = bytes, Detail = "masked input" })
            .ConfigureAwait(false);
        return new SubmitResult { Accepted = true };
    }

    private async Task<SubmitResult> Stage(PrivateStage stage, string experimentId, int round, byte[]? payload)
    {
        long bytes = payload?.LongLength ?? 0;
        if (!CallerInput.IsId(experimentId))
            return await Reject(null, round, bytes, CallerInput.DescribeInvalidId(experimentId)).ConfigureAwait(false);
        if (payload is null || payload.Length == 0)
            return await Reject(experimentId, round, bytes, $"empty {SecureRounds.Name(stage)} message").ConfigureAwait(false);
        if (payload.LongLength > options.Value.MaxMessageBytes)
            return await Reject(experimentId, round, bytes, $"{SecureRounds.Name(stage)} message of {payload.LongLength} bytes exceeds the message limit").ConfigureAwait(false);
        string client = ClientId;
        string? reason;
        using (await gate.EnterAsync().ConfigureAwait(false))
        {
            if (clients.GetClient(client) is not { Revoked: false })
                throw new HubException("This client has been revoked.");
            reason = algorithms.Get(experimentId) is not { } experiment
                ? $"no experiment '{experimentId}'"
                : secure.Accept(stage, experiment, round, client, payload, clock.GetUtcNow());
            if (reason is null)
                ownership.Nudge(experimentId);
        }
        if (reason is not null)
            return await Reject(experimentId, round, bytes, reason).ConfigureAwait(false);
        return new SubmitResult { Accepted = true };
    }
}
