using System.Collections.Concurrent;
using Ferret.Coordinator.Persistence;
using Ferret.Coordinator.Rounds;
using Ferret.Core.Packets;
using Ferret.Core.Privacy;
using Ferret.Core.Protocol;
using Microsoft.AspNetCore.SignalR;

namespace Ferret.Coordinator.Privacy;

/// <summary>What one look at a secure round decided.</summary>
public abstract record SecureStep
{
    public static SecureStep Pending { get; } = new PendingStep();

    /// <summary>The round waits for more messages or for its stage deadline.</summary>
    public sealed record PendingStep : SecureStep;

    /// <summary>The round cannot be completed: too few clients, or its masks cannot be removed.</summary>
    public sealed record Abandon(string Reason) : SecureStep;

    /// <summary>The sum is unmasked and aggregated: the engine stores and broadcasts the update.</summary>
    public sealed record Complete(PrivateRound Result, long BytesUp, IReadOnlyCollection<string> Inputs) : SecureStep;
}

/// <summary>
/// Runs the four stages of secure aggregation over the rounds hub: each stage waits until every client still in
/// the round answered or its deadline passed, then freezes (no message for it is accepted any more), and the
/// next stage's requests go out, computed by <see cref="SecureAggregationServer"/> from what was frozen. All of
/// it is in the round log and the private-round store first, so a restarted coordinator resumes the stage it was
/// in and re-sends a rejoining client the request it is missing.
/// </summary>
public sealed partial class SecureRounds(IPrivateRoundStore store, IRoundLog log, IHubContext<RoundsHub> hub, ILogger<SecureRounds> logger)
{
    private readonly ConcurrentDictionary<(string Experiment, int Round), SecureRoundState> _rounds = new();

    /// <summary>Records a secure round before its assignments go out: stage 0 until <paramref name="keysDeadlineUtc"/>.</summary>
    public void Open(string experimentId, int round, int eligible, int assigned, double clipNorm, DateTimeOffset keysDeadlineUtc)
    {
        _rounds.TryRemove((experimentId, round), out _);
        store.OpenRound(new PrivateRoundRecord(experimentId, round, eligible, assigned, clipNorm, PrivateStage.AdvertiseKeys, keysDeadlineUtc));
    }

    /// <summary>Stops accepting stage messages for a round that is over (abandoned or completed).</summary>
    public void Close(string experimentId, int round)
    {
        if (store.GetRound(experimentId, round) is { Stage: not PrivateStage.Closed } record)
            store.AdvanceStage(experimentId, round, record.Stage, PrivateStage.Closed, record.StageDeadlineUtc);
        _rounds.TryRemove((experimentId, round), out _);
    }

    /// <summary>One look at an open secure round.</summary>
    public async Task<SecureStep> StepAsync(RoundRecord open, ExperimentAlgorithm experiment, DateTimeOffset now, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(open);
        ArgumentNullException.ThrowIfNull(experiment);
        string id = open.ExperimentId;
        int round = open.Round;
        if (store.GetRound(id, round) is not { } record || record.Stage == PrivateStage.Packets)
            return new SecureStep.Abandon("the round's secure-aggregation record is missing");
        var state = State(experiment, round, record);
        var settings = experiment.Descriptor.Privacy!.SecureAggregation!;
        var assignments = log.GetAssignments(id, round);
        var failed = assignments.Where(a => a.State == AssignmentState.Failed).Select(a => a.ClientId).ToHashSet(StringComparer.Ordinal);
        bool due = now >= record.StageDeadlineUtc;
        switch (record.Stage)
        {
            case PrivateStage.AdvertiseKeys:
                {
                    var answered = store.Answered(id, round, PrivateStage.AdvertiseKeys);
                    if (!due && state.Frame.Participants.Any(c => !failed.Contains(c) && !answered.Contains(c)))
                        return SecureStep.Pending;
                    var deadline = now.AddSeconds(settings.SharesSeconds);
                    if (!store.AdvanceStage(id, round, PrivateStage.AdvertiseKeys, PrivateStage.ShareKeys, deadline))
                        return SecureStep.Pending;
                    var advertised = state.Advertised(store);
                    if (advertised.Count < state.Frame.Threshold)
                        return new SecureStep.Abandon($"only {advertised.Count} of {state.Frame.Participants.Count} clients advertised keys; the threshold is {state.Frame.Threshold}");
                    await PushAsync(RoundsProtocol.ShareKeysRequest, SecureAggregationServer.ShareKeysRequests(state.Frame, advertised, deadline), ct).ConfigureAwait(false);
                    await StageEventAsync(open, "share-keys", $"{advertised.Count} of {state.Frame.Participants.Count} clients advertised keys", now, ct).ConfigureAwait(false);
                    return SecureStep.Pending;
                }
            case PrivateStage.ShareKeys:
                {
                    var advertised = state.Advertised(store);
                    var answered = store.Answered(id, round, PrivateStage.ShareKeys);
                    if (!due && advertised.Keys.Any(c => !failed.Contains(c) && !answered.Contains(c)))
                        return SecureStep.Pending;
                    var deadline = Max(open.DeadlineUtc, now.AddSeconds(settings.SharesSeconds));
                    if (!store.AdvanceStage(id, round, PrivateStage.ShareKeys, PrivateStage.MaskedInput, deadline))
                        return SecureStep.Pending;
                    var shared = state.Shared(store);
                    if (shared.Count < state.Frame.Threshold)
                        return new SecureStep.Abandon($"only {shared.Count} of {advertised.Count} clients shared their keys; the threshold is {state.Frame.Threshold}");
                    await PushAsync(RoundsProtocol.MaskedInputRequest, SecureAggregationServer.MaskedInputRequests(state.Frame, shared, deadline), ct).ConfigureAwait(false);
                    await StageEventAsync(open, "masked-input", $"{shared.Count} of {advertised.Count} clients shared their keys", now, ct).ConfigureAwait(false);
                    return SecureStep.Pending;
                }
            case PrivateStage.MaskedInput:
                {
                    var shared = state.Shared(store);
                    var waiting = assignments.Where(a => a.State == AssignmentState.Assigned && shared.ContainsKey(a.ClientId)).Select(a => a.ClientId).ToList();
                    if (!due && waiting.Count > 0)
                        return SecureStep.Pending;
                    var deadline = now.AddSeconds(settings.UnmaskSeconds);
                    if (!store.AdvanceStage(id, round, PrivateStage.MaskedInput, PrivateStage.Unmasking, deadline))
                        return SecureStep.Pending;
                    // Freeze the inputs: after this no masked input of the round is accepted, so every client unmasks the same set.
                    foreach (var c in waiting)
                        log.MarkAssignmentFailed(id, round, c, "no masked input before the deadline");
                    var inputs = state.Inputs(log, reload: true);
                    if (inputs.Count < state.Frame.Threshold)
                        return new SecureStep.Abandon($"only {inputs.Count} of {shared.Count} masked inputs arrived; the threshold is {state.Frame.Threshold}");
                    await PushAsync(RoundsProtocol.UnmaskRequest, SecureAggregationServer.UnmaskRequests(state.Frame, shared.Keys, inputs.Keys, deadline), ct).ConfigureAwait(false);
                    await StageEventAsync(open, "unmasking", $"{inputs.Count} of {shared.Count} masked inputs arrived", now, ct).ConfigureAwait(false);
                    return SecureStep.Pending;
                }
            case PrivateStage.Unmasking:
                {
                    var inputs = state.Inputs(log);
                    var answered = store.Answered(id, round, PrivateStage.Unmasking);
                    if (!due && inputs.Keys.Any(c => !answered.Contains(c)))
                        return SecureStep.Pending;
                    if (!store.AdvanceStage(id, round, PrivateStage.Unmasking, PrivateStage.Closed, record.StageDeadlineUtc))
                        return SecureStep.Pending;
                    return Finish(id, round, state, experiment);
                }
            case PrivateStage.Closed:
                // Unmasked before, but the round never reached the log (a crash, a full disk): everything needed is frozen, do it again.
                return Finish(id, round, state, experiment);
            default:
                return new SecureStep.Abandon($"unknown secure stage {record.Stage}");
        }
    }

    private SecureStep Finish(string id, int round, SecureRoundState state, ExperimentAlgorithm experiment)
    {
        var revealed = store.GetMessages(id, round, PrivateStage.Unmasking).ToDictionary(p => p.Key, p => Wire.Deserialize<UnmaskResponse>(p.Value), StringComparer.Ordinal);
        var inputs = state.Inputs(log);
        var outcome = SecureAggregationServer.Unmask(state.Frame, state.Advertised(store), state.Shared(store), inputs, revealed);
        if (!outcome.Succeeded)
            return new SecureStep.Abandon($"the sum could not be unmasked: {outcome.Failure}");
        var result = experiment.Private!.AggregateSum(round, state.Plan, outcome.Sum, outcome.Summed.Count);
        long bytesUp = store.MessageBytes(id, round) + log.GetAssignments(id, round).Sum(a => a.PacketBytes);
        SecureLog.Unmasked(logger, id, round, outcome.Summed.Count, state.Frame.Participants.Count);
        return new SecureStep.Complete(result, bytesUp, [.. inputs.Keys]);
    }

    /// <summary>
    /// Door check and storage of a client's message for stage 0, 1 or 3; null when accepted, else the reason. An
    /// identical repeat (a retry after a reconnect) is accepted again; a different one is a replay and refused.
    /// </summary>
    public string? Accept(PrivateStage stage, ExperimentAlgorithm experiment, int round, string clientId, byte[] payload, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(experiment);
        ArgumentNullException.ThrowIfNull(payload);
        string id = experiment.Descriptor.Id;
        // A retry of what was already accepted (the answer was lost to a reconnect) is accepted again, even once the stage is over.
        if (store.GetMessage(id, round, stage, clientId) is { } earlier)
            return earlier.AsSpan().SequenceEqual(payload) ? null : $"a different {Name(stage)} message from this client was already received (replay)";
        if (CheckStage(stage, experiment, round, clientId, out var state) is { } closed)
            return closed;
        try
        {
            string? reason = stage switch
            {
                PrivateStage.AdvertiseKeys => SecureAggregationServer.CheckAdvertised(state.Frame, clientId, Wire.Deserialize<AdvertisedKeys>(payload)),
                PrivateStage.ShareKeys => SecureAggregationServer.CheckShares(state.Frame, clientId, Wire.Deserialize<ShareKeysResponse>(payload), state.Advertised(store)),
                PrivateStage.Unmasking => SecureAggregationServer.CheckUnmask(state.Frame, clientId, Wire.Deserialize<UnmaskResponse>(payload), state.Shared(store), state.Inputs(log).Keys),
                _ => $"stage {Name(stage)} takes no such message",
            };
            if (reason is not null)
                return reason;
        }
        catch (InvalidDataException e)
        {
            return $"malformed {Name(stage)} message: {e.Message}";
        }
        return store.RecordMessage(id, round, clientId, stage, payload, now) switch
        {
            StageMessageOutcome.Accepted => null,
            StageMessageOutcome.Duplicate => store.GetMessage(id, round, stage, clientId) is { } stored && stored.AsSpan().SequenceEqual(payload)
                ? null
                : $"a different {Name(stage)} message from this client was already received (replay)",
            StageMessageOutcome.WrongStage => $"the {Name(stage)} stage of round {round} closed before this message arrived (late)",
            _ => $"round {round} is not a secure round",
        };
    }

    /// <summary>Door check of a masked input before it is recorded as the client's packet; null when it may be recorded.</summary>
    public string? CheckMaskedInput(ExperimentAlgorithm experiment, int round, string clientId, byte[] payload)
    {
        ArgumentNullException.ThrowIfNull(experiment);
        if (CheckStage(PrivateStage.MaskedInput, experiment, round, clientId, out var state) is { } closed)
            return closed;
        try
        {
            return SecureAggregationServer.CheckMaskedInput(state.Frame, clientId, Wire.Deserialize<MaskedInput>(payload), state.Shared(store));
        }
        catch (InvalidDataException e)
        {
            return $"malformed masked input: {e.Message}";
        }
    }

    /// <summary>The privacy part of a secure round's assignment, rebuilt from the store for a client that rejoins.</summary>
    public PrivateRoundInfo? AssignmentInfo(ExperimentAlgorithm experiment, int round)
    {
        ArgumentNullException.ThrowIfNull(experiment);
        var record = store.GetRound(experiment.Descriptor.Id, round);
        if (record is null || record.Stage == PrivateStage.Packets)
            return null;
        return new PrivateRoundInfo { Assigned = record.Assigned, Eligible = record.Eligible, ClipNorm = record.ClipNorm, Secure = true, KeysDeadlineUtc = record.StageDeadlineUtc };
    }

    /// <summary>Re-sends a rejoining client the request of the current stage it has not answered (after a reconnect or a coordinator restart).</summary>
    public async Task ResendAsync(ExperimentAlgorithm experiment, int round, string clientId, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(experiment);
        string id = experiment.Descriptor.Id;
        if (store.GetRound(id, round) is not { } record)
            return;
        var state = State(experiment, round, record);
        if (!state.Frame.IsParticipant(clientId))
            return;
        switch (record.Stage)
        {
            case PrivateStage.ShareKeys when store.GetMessage(id, round, PrivateStage.ShareKeys, clientId) is null:
                if (SecureAggregationServer.ShareKeysRequests(state.Frame, state.Advertised(store), record.StageDeadlineUtc).TryGetValue(clientId, out var share))
                    await hub.Clients.User(clientId).SendAsync(RoundsProtocol.ShareKeysRequest, share, ct).ConfigureAwait(false);
                break;
            case PrivateStage.MaskedInput when log.GetAssignments(id, round).Any(a => a.ClientId == clientId && a.State == AssignmentState.Assigned):
                if (SecureAggregationServer.MaskedInputRequests(state.Frame, state.Shared(store), record.StageDeadlineUtc).TryGetValue(clientId, out var mask))
                    await hub.Clients.User(clientId).SendAsync(RoundsProtocol.MaskedInputRequest, mask, ct).ConfigureAwait(false);
                break;
            case PrivateStage.Unmasking when store.GetMessage(id, round, PrivateStage.Unmasking, clientId) is null:
                var inputs = state.Inputs(log);
                if (SecureAggregationServer.UnmaskRequests(state.Frame, state.Shared(store).Keys, inputs.Keys, record.StageDeadlineUtc).TryGetValue(clientId, out var unmask))
                    await hub.Clients.User(clientId).SendAsync(RoundsProtocol.UnmaskRequest, unmask, ct).ConfigureAwait(false);
                break;
        }
    }

    private string? CheckStage(PrivateStage stage, ExperimentAlgorithm experiment, int round, string clientId, out SecureRoundState state)
    {
        state = null!;
        string id = experiment.Descriptor.Id;
        if (experiment.Private is not { Secure: true })
            return $"experiment '{id}' does not use secure aggregation";
        if (store.GetRound(id, round) is not { } record || record.Stage == PrivateStage.Packets)
            return $"round {round} of '{id}' is not an open secure round";
        state = State(experiment, round, record);
        if (!state.Frame.IsParticipant(clientId))
            return $"this client is not assigned to round {round}";
        if (record.Stage != stage)
            return $"round {round} is at stage {Name(record.Stage)}, not {Name(stage)}";
        return null;
    }

    private SecureRoundState State(ExperimentAlgorithm experiment, int round, PrivateRoundRecord record) =>
        _rounds.GetOrAdd((experiment.Descriptor.Id, round), _ =>
        {
            var settings = experiment.Descriptor.Privacy!;
            var plan = PrivacyPlan.Create(settings, experiment.Private!.GammaLength, round, record.Assigned, record.Eligible, record.ClipNorm);
            var ids = log.GetAssignments(experiment.Descriptor.Id, round).Select(a => a.ClientId).ToList();
            var frame = SecureRound.Create(experiment.Descriptor.Id, round, ids, settings.SecureAggregation!.Threshold, settings.SecureAggregation.Neighbours,
                plan.VectorLength, experiment.Descriptor.ExperimentSeed);
            return new SecureRoundState(frame, plan);
        });

    private async Task PushAsync<T>(string method, IReadOnlyDictionary<string, T> requests, CancellationToken ct)
    {
        foreach (var (client, request) in requests)
            await hub.Clients.User(client).SendAsync(method, request, ct).ConfigureAwait(false);
    }

    private Task StageEventAsync(RoundRecord open, string stage, string detail, DateTimeOffset now, CancellationToken ct) =>
        hub.Clients.Group(RoundsHub.Group(open.ExperimentId)).SendAsync(RoundsProtocol.RoundEvent, new RoundEvent
        {
            ExperimentId = open.ExperimentId,
            Round = open.Round,
            Kind = RoundEvent.Stage,
            AtUtc = now,
            Seconds = (now - open.OpenedUtc).TotalSeconds,
            Detail = $"{stage}: {detail}",
        }, ct);

    private static DateTimeOffset Max(DateTimeOffset a, DateTimeOffset b) => a > b ? a : b;

    /// <summary>A stage as the protocol's messages name it.</summary>
    public static string Name(PrivateStage stage) => stage switch
    {
        PrivateStage.AdvertiseKeys => "advertise-keys",
        PrivateStage.ShareKeys => "share-keys",
        PrivateStage.MaskedInput => "masked-input",
        PrivateStage.Unmasking => "unmasking",
        PrivateStage.Closed => "closed",
        _ => "packets",
    };

    /// <summary>A secure round's frame and plan, and its frozen message sets once their stage is over (they never change after).</summary>
    private sealed class SecureRoundState(SecureRound frame, PrivacyPlan plan)
    {
        private Dictionary<string, AdvertisedKeys>? _advertised;
        private Dictionary<string, ShareKeysResponse>? _shared;
        private Dictionary<string, MaskedInput>? _inputs;

        public SecureRound Frame => frame;

        public PrivacyPlan Plan => plan;

        public IReadOnlyDictionary<string, AdvertisedKeys> Advertised(IPrivateRoundStore store) =>
            _advertised ??= store.GetMessages(frame.ExperimentId, frame.Round, PrivateStage.AdvertiseKeys)
                .ToDictionary(p => p.Key, p => Wire.Deserialize<AdvertisedKeys>(p.Value), StringComparer.Ordinal);

        public IReadOnlyDictionary<string, ShareKeysResponse> Shared(IPrivateRoundStore store) =>
            _shared ??= store.GetMessages(frame.ExperimentId, frame.Round, PrivateStage.ShareKeys)
                .ToDictionary(p => p.Key, p => Wire.Deserialize<ShareKeysResponse>(p.Value), StringComparer.Ordinal);

        /// <summary>The masked inputs; <paramref name="reload"/> reads them again once they are frozen, in case a door check read them a moment before.</summary>
        public Dictionary<string, MaskedInput> Inputs(IRoundLog log, bool reload = false)
        {
            if (reload || _inputs is null)
                _inputs = log.GetPackets(frame.ExperimentId, frame.Round).ToDictionary(p => p.ClientId, p => Wire.Deserialize<MaskedInput>(p.Packet), StringComparer.Ordinal);
            return _inputs;
        }
    }

    private static partial class SecureLog
    {
        [LoggerMessage(EventId = 30, Level = LogLevel.Information, Message = "{Experiment} round {Round} unmasked: the sum of {Summed} of {Assigned} clients' inputs")]
        public static partial void Unmasked(ILogger logger, string experiment, int round, int summed, int assigned);
    }
}
