using System.Text.Json;
using System.Threading.Channels;
using Ferret.Coordinator.Persistence;
using Ferret.Coordinator.Privacy;
using Ferret.Coordinator.ScaleOut;
using Ferret.Core.Algorithms;
using Ferret.Core.Packets;
using Ferret.Core.Privacy;
using Ferret.Core.Protocol;
using Ferret.Core.Randomness;
using Microsoft.AspNetCore.SignalR;
using Microsoft.Extensions.Options;

namespace Ferret.Coordinator.Rounds;

/// <summary>What the round log keeps about a closed round besides the update itself (JSON); private rounds add their privacy line.</summary>
public sealed record RoundMetrics(int Assigned, int Aggregated, int Missing, double? MeanTrainLoss, long BytesUp, long BytesDown, double Seconds,
    RoundPrivacy? Privacy = null);

/// <summary>
/// Runs every experiment's rounds: waits for enough joined clients, samples the fraction, sends
/// assignments, waits until every assigned client answered or the deadline passed, aggregates what
/// arrived (failures and silence recorded, never blocking), persists the global update with the
/// aggregator's state in one transaction, and only then broadcasts it. Everything it decides is in the
/// round log first, so a coordinator killed at any moment restarts where the log says: an open round
/// keeps its assignments and deadline, a completed one is never redone. With several instances, each
/// steps only the experiments it owns (<see cref="IExperimentOwnership"/>); an instance that takes one over
/// continues from the log exactly as a restarted coordinator would.
/// </summary>
public sealed partial class RoundEngine : BackgroundService
{
    /// <summary>Global updates up to this size travel inside the round event; larger ones are fetched over HTTP.</summary>
    public const int InlineUpdateBytes = 256 * 1024;

    private readonly IRoundLog _log;
    private readonly IClientRegistry _clients;
    private readonly ExperimentAlgorithms _algorithms;
    private readonly IParticipants _participants;
    private readonly IExperimentOwnership _ownership;
    private readonly IHubContext<RoundsHub> _hub;
    private readonly TimeProvider _clock;
    private readonly IOptions<CoordinatorOptions> _options;
    private readonly ILogger<RoundEngine> _logger;
    private readonly PacketDoor _door;
    private readonly SecureRounds _secure;
    private readonly IPrivateRoundStore _privateRounds;
    private readonly Dictionary<string, (string Message, DateTimeOffset LoggedUtc, int Since)> _failures = new(StringComparer.Ordinal);
    private readonly Channel<bool> _wake = Channel.CreateBounded<bool>(new BoundedChannelOptions(1) { FullMode = BoundedChannelFullMode.DropWrite });

    public RoundEngine(IRoundLog log, IClientRegistry clients, ExperimentAlgorithms algorithms, IParticipants participants,
        IExperimentOwnership ownership, IHubContext<RoundsHub> hub, TimeProvider clock, IOptions<CoordinatorOptions> options, ILogger<RoundEngine> logger,
        PacketDoor door, SecureRounds secure, IPrivateRoundStore privateRounds)
    {
        ArgumentNullException.ThrowIfNull(ownership);
        _log = log;
        _clients = clients;
        _algorithms = algorithms;
        _participants = participants;
        _ownership = ownership;
        _hub = hub;
        _clock = clock;
        _options = options;
        _logger = logger;
        _door = door;
        _secure = secure;
        _privateRounds = privateRounds;
        ownership.Woken += (experimentId, gained) =>
        {
            // A new owner's aggregator must come from the log, whatever it held when it last owned the experiment.
            if (gained)
                _algorithms.Evict(experimentId);
            Wake();
        };
    }

    /// <summary>Asks the engine to look at the experiments now (a packet arrived, a client joined).</summary>
    public void Wake() => _wake.Writer.TryWrite(true);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (!_options.Value.RunRounds)
            return;
        var tick = TimeSpan.FromMilliseconds(_options.Value.EngineTickMilliseconds);
        while (!stoppingToken.IsCancellationRequested)
        {
            foreach (var experiment in _log.ListExperiments())
            {
                if (experiment.State is ExperimentState.Completed || !_ownership.Owns(experiment.Id))
                    continue;
                try
                {
                    await StepAsync(experiment, stoppingToken).ConfigureAwait(false);
                    _failures.Remove(experiment.Id);
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    // One experiment's fault (a full disk, a database that does not answer) must not stop the others.
                    _algorithms.Evict(experiment.Id);
                    ReportFailure(experiment.Id, e);
                }
            }
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
            timeout.CancelAfter(tick);
            try
            {
                await _wake.Reader.ReadAsync(timeout.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (!stoppingToken.IsCancellationRequested)
            {
            }
        }
    }

    /// <summary>One look at one experiment: close its open round if it is done, or open the next one.</summary>
    internal async Task StepAsync(ExperimentRecord experiment, CancellationToken cancellationToken)
    {
        var progress = _log.GetProgress(experiment.Id);
        var open = progress.Open;
        int baseRound = progress.LastCompleted;
        var now = _clock.GetUtcNow();
        if (experiment.State == ExperimentState.Stopped)
        {
            if (open is not null)
            {
                _log.AbandonRound(experiment.Id, open.Round, "experiment stopped", now);
                _secure.Close(experiment.Id, open.Round);
                CoordinatorMetrics.RoundsAbandoned.Add(1);
                await BroadcastAsync(new RoundEvent
                {
                    ExperimentId = experiment.Id,
                    Round = open.Round,
                    Kind = RoundEvent.Abandoned,
                    BaseRound = baseRound,
                    ExperimentEnded = true,
                    AtUtc = now,
                    Seconds = (now - open.OpenedUtc).TotalSeconds,
                    Detail = "experiment stopped",
                }, cancellationToken).ConfigureAwait(false);
            }
            return;
        }
        if (open is not null)
        {
            var assignments = _log.GetAssignments(experiment.Id, open.Round);
            if (_algorithms.Get(experiment.Id) is { Private.Secure: true } secure)
            {
                await StepSecureAsync(experiment, open, secure, assignments.Count, baseRound, now, cancellationToken).ConfigureAwait(false);
                return;
            }
            if (now >= open.DeadlineUtc || assignments.All(a => a.State != AssignmentState.Assigned))
                await CloseAsync(experiment, open, assignments, baseRound, now, cancellationToken).ConfigureAwait(false);
            return;
        }
        int next = progress.LastRound + 1;
        if (next > experiment.Rounds)
        {
            _log.SetExperimentState(experiment.Id, ExperimentState.Completed, now);
            return;
        }
        if (_algorithms.Get(experiment.Id) is not { } algorithm)
            return;
        var descriptor = algorithm.Descriptor;
        var connected = _participants.Connected(experiment.Id);
        if (connected.Count < descriptor.MinClients)
            return; // the common idle case, decided without touching the database
        var revoked = _clients.RevokedClientIds();
        var eligible = connected.Where(c => !revoked.Contains(c)).ToList();
        // A secure round needs at least threshold inputs, so it draws at least that many clients.
        int atLeast = descriptor.Privacy?.SecureAggregation?.Threshold ?? 1;
        if (eligible.Count < Math.Max(descriptor.MinClients, atLeast))
            return;
        var chosen = Sample(eligible, descriptor, next, atLeast);
        var deadline = now.AddSeconds(descriptor.RoundDeadlineSeconds);
        PrivateRoundInfo? privacy = null;
        if (algorithm.Private is { } p)
        {
            privacy = new PrivateRoundInfo { Assigned = chosen.Count, Eligible = eligible.Count, ClipNorm = p.ClipNorm, Secure = p.Secure };
            // The round's public numbers go to the store before the round exists, so no open private round lacks them.
            if (p.Secure)
            {
                privacy.KeysDeadlineUtc = now.AddSeconds(descriptor.Privacy!.SecureAggregation!.KeysSeconds);
                _secure.Open(experiment.Id, next, eligible.Count, chosen.Count, p.ClipNorm, privacy.KeysDeadlineUtc);
            }
            else
            {
                _privateRounds.OpenRound(new PrivateRoundRecord(experiment.Id, next, eligible.Count, chosen.Count, p.ClipNorm, PrivateStage.Packets, deadline));
            }
        }
        _log.OpenRound(experiment.Id, next, now, deadline, chosen);
        EngineLog.Opened(_logger, experiment.Id, next, chosen.Count, eligible.Count);
        foreach (var client in chosen)
        {
            await _hub.Clients.User(client).SendAsync(RoundsProtocol.Assignment, new RoundAssignment
            {
                ExperimentId = experiment.Id,
                Round = next,
                BaseRound = baseRound,
                DeadlineUtc = deadline,
                Privacy = privacy,
            }, cancellationToken).ConfigureAwait(false);
        }
        await BroadcastAsync(new RoundEvent
        {
            ExperimentId = experiment.Id,
            Round = next,
            Kind = RoundEvent.Opened,
            BaseRound = baseRound,
            Assigned = chosen.Count,
            AtUtc = now,
            Detail = string.Join(',', chosen),
            DeadlineUtc = deadline,
            AssignedClients = [.. chosen],
        }, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// The round's participants: <c>max(atLeast, round(m * eligible))</c> clients drawn without replacement,
    /// reproducibly from the experiment seed and the round (the eligible list is in ordinal order).
    /// </summary>
    public static List<string> Sample(IReadOnlyList<string> eligible, ExperimentDescriptor descriptor, int round, int atLeast = 1)
    {
        ArgumentNullException.ThrowIfNull(eligible);
        ArgumentNullException.ThrowIfNull(descriptor);
        int n = Math.Clamp((int)Math.Round(descriptor.Fraction * eligible.Count, MidpointRounding.AwayFromZero), Math.Max(1, atLeast), eligible.Count);
        var pool = eligible.ToArray();
        SeedMix.Random(descriptor.ExperimentSeed, (ulong)round, 0x5A3D1E).Shuffle(pool);
        return [.. pool.Take(n).Order(StringComparer.Ordinal)];
    }

    private async Task CloseAsync(ExperimentRecord experiment, RoundRecord open, IReadOnlyList<AssignmentRecord> assignments, int baseRound,
        DateTimeOffset now, CancellationToken cancellationToken)
    {
        bool last = open.Round >= experiment.Rounds;
        var experimentAlgorithm = _algorithms.Get(experiment.Id) ?? throw new InvalidOperationException($"Experiment '{experiment.Id}' vanished.");
        // Every stored packet passes the door's checks again: a packet stored by an older, laxer coordinator
        // (or damaged on disk) is turned away with its reason here instead of failing the round on every tick.
        var updates = new List<ClientUpdate>();
        var aggregated = new List<string>();
        long up = 0;
        var stored = _log.GetPackets(experiment.Id, open.Round);
        foreach (var (clientId, packet) in stored)
        {
            var (checkedUpdate, reason) = _door.Inspect(experimentAlgorithm.Descriptor, experimentAlgorithm.Algorithm, open.Round, packet);
            if (checkedUpdate is null)
            {
                _log.RejectStoredPacket(experiment.Id, open.Round, clientId, $"stored packet failed the checks at aggregation: {reason}");
                EngineLog.StoredPacketRejected(_logger, experiment.Id, open.Round, clientId, reason!);
                continue;
            }
            updates.Add(checkedUpdate);
            aggregated.Add(clientId);
            up += packet.Length;
        }
        if (updates.Count == 0)
        {
            string why = stored.Count == 0 ? "no packet arrived before the deadline" : "no valid packet arrived before the deadline";
            await AbandonAsync(experiment, open, assignments.Count, baseRound, last, now, why, cancellationToken).ConfigureAwait(false);
            return;
        }
        GlobalUpdate update;
        RoundPrivacy? privacy = null;
        double? loss;
        try
        {
            if (experimentAlgorithm.Private is { } p)
            {
                // Central DP in the clear: the coordinator clips and quantizes every packet, sums, and adds the noise.
                var record = _privateRounds.GetRound(experiment.Id, open.Round)
                    ?? new PrivateRoundRecord(experiment.Id, open.Round, assignments.Count, assignments.Count, p.ClipNorm, PrivateStage.Packets, open.DeadlineUtc);
                var result = p.AggregatePackets(open.Round, p.Plan(open.Round, record.Assigned, record.Eligible), updates.Cast<FerretUpdate>().ToList());
                (update, privacy, loss) = (result.Update, result.Privacy, result.MeanTrainLoss);
            }
            else
            {
                var failures = _log.GetAssignments(experiment.Id, open.Round).Where(a => a.State != AssignmentState.Received)
                    .Select(a => new ClientFailure(a.ClientId, a.Reason ?? a.State.ToString().ToLowerInvariant())).ToList();
                update = experimentAlgorithm.Algorithm.Aggregate(open.Round, updates, failures);
                var losses = updates.Select(u => u.Stats.Loss).Where(double.IsFinite).ToList();
                loss = losses.Count > 0 ? losses.Average() : null;
            }
        }
        catch (Exception e) when (e is not OperationCanceledException and not OutOfMemoryException)
        {
            // Packets that pass the door cannot fail aggregation; if one ever does, the round is given up with the
            // reason (the next round builds on the same model) rather than retried forever.
            _algorithms.Evict(experiment.Id);
            EngineLog.AggregationFailed(_logger, e, experiment.Id, open.Round);
            await AbandonAsync(experiment, open, assignments.Count, baseRound, last, now, $"aggregation failed: {e.Message}", cancellationToken).ConfigureAwait(false);
            return;
        }
        await CompleteAsync(experiment, open, experimentAlgorithm, update, baseRound, now, assignments.Count, loss, up, privacy, aggregated, cancellationToken)
            .ConfigureAwait(false);
    }

    /// <summary>One look at an open secure round: its stages advance, and it is abandoned or completed once unmasked.</summary>
    private async Task StepSecureAsync(ExperimentRecord experiment, RoundRecord open, ExperimentAlgorithm secure, int assigned, int baseRound, DateTimeOffset now,
        CancellationToken cancellationToken)
    {
        bool last = open.Round >= experiment.Rounds;
        var step = await _secure.StepAsync(open, secure, now, cancellationToken).ConfigureAwait(false);
        if (step is SecureStep.Abandon abandon)
        {
            await AbandonAsync(experiment, open, assigned, baseRound, last, now, abandon.Reason, cancellationToken).ConfigureAwait(false);
        }
        else if (step is SecureStep.Complete complete)
        {
            await CompleteAsync(experiment, open, secure, complete.Result.Update, baseRound, now, assigned, complete.Result.MeanTrainLoss, complete.BytesUp,
                complete.Result.Privacy, complete.Inputs, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Stores the round's update with the aggregator's state in one transaction (refused unless the round's packets are exactly those aggregated), then broadcasts it.</summary>
    private async Task CompleteAsync(ExperimentRecord experiment, RoundRecord open, ExperimentAlgorithm experimentAlgorithm, GlobalUpdate update, int baseRound,
        DateTimeOffset now, int assigned, double? loss, long up, RoundPrivacy? privacy, IReadOnlyCollection<string> aggregatedClients, CancellationToken cancellationToken)
    {
        double seconds = (now - open.OpenedUtc).TotalSeconds;
        bool last = open.Round >= experiment.Rounds;
        var bytes = Wire.Serialize(update);
        int aggregated = privacy?.Contributors ?? update.Contributors;
        var metrics = new RoundMetrics(assigned, aggregated, assigned - aggregated, loss, up, bytes.Length, seconds, privacy);
        try
        {
            _log.CompleteRound(experiment.Id, open.Round, bytes, experimentAlgorithm.ExportState(), JsonSerializer.Serialize(metrics), now, aggregatedClients);
        }
        catch
        {
            // The aggregator has advanced in memory but the log has not (a packet arrived meanwhile, another instance
            // closed the round, the disk is full): forget it, the next step reloads from the log and aggregates again.
            _algorithms.Evict(experiment.Id);
            throw;
        }
        _secure.Close(experiment.Id, open.Round);
        KillSwitch.Reach(KillPoints.AfterPersistBeforeBroadcast);
        CoordinatorMetrics.RoundsCompleted.Add(1);
        CoordinatorMetrics.RoundDuration.Record(seconds);
        EngineLog.Completed(_logger, experiment.Id, open.Round, aggregated, assigned, bytes.Length, seconds);
        await BroadcastAsync(new RoundEvent
        {
            ExperimentId = experiment.Id,
            Round = open.Round,
            Kind = RoundEvent.Completed,
            BaseRound = baseRound,
            Assigned = assigned,
            Aggregated = aggregated,
            Missing = metrics.Missing,
            MeanTrainLoss = loss,
            BytesUp = up,
            BytesDown = bytes.Length,
            Seconds = seconds,
            GlobalUpdate = bytes.Length <= InlineUpdateBytes ? bytes : null,
            ExperimentEnded = last,
            AtUtc = now,
            Epsilon = privacy?.Epsilon,
        }, cancellationToken).ConfigureAwait(false);
    }

    private async Task AbandonAsync(ExperimentRecord experiment, RoundRecord open, int assigned, int baseRound, bool last, DateTimeOffset now, string reason,
        CancellationToken cancellationToken)
    {
        _log.AbandonRound(experiment.Id, open.Round, reason, now);
        _secure.Close(experiment.Id, open.Round);
        CoordinatorMetrics.RoundsAbandoned.Add(1);
        if (last)
            _log.SetExperimentState(experiment.Id, ExperimentState.Completed, now);
        EngineLog.Abandoned(_logger, experiment.Id, open.Round, reason);
        await BroadcastAsync(new RoundEvent
        {
            ExperimentId = experiment.Id,
            Round = open.Round,
            Kind = RoundEvent.Abandoned,
            BaseRound = baseRound,
            Assigned = assigned,
            Missing = assigned,
            Seconds = (now - open.OpenedUtc).TotalSeconds,
            ExperimentEnded = last,
            AtUtc = now,
            Detail = reason,
        }, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Logs a failed step with its stack the first time, then once a minute while the same failure repeats.</summary>
    private void ReportFailure(string experimentId, Exception e)
    {
        var now = _clock.GetUtcNow();
        string message = e.GetType().FullName + ": " + e.Message;
        if (_failures.TryGetValue(experimentId, out var seen) && seen.Message == message && now - seen.LoggedUtc < TimeSpan.FromMinutes(1))
        {
            _failures[experimentId] = seen with { Since = seen.Since + 1 };
            return;
        }
        EngineLog.StepFailed(_logger, e, experimentId, seen.Message == message ? seen.Since : 0);
        _failures[experimentId] = (message, now, 0);
    }

    private Task BroadcastAsync(RoundEvent e, CancellationToken cancellationToken) =>
        _hub.Clients.Group(RoundsHub.Group(e.ExperimentId)).SendAsync(RoundsProtocol.RoundEvent, e, cancellationToken);

    private static partial class EngineLog
    {
        [LoggerMessage(EventId = 10, Level = LogLevel.Information, Message = "{Experiment} round {Round} opened: {Chosen} of {Eligible} connected clients assigned")]
        public static partial void Opened(ILogger logger, string experiment, int round, int chosen, int eligible);

        [LoggerMessage(EventId = 11, Level = LogLevel.Information, Message = "{Experiment} round {Round} completed: {Aggregated} of {Assigned} packets aggregated, global update {Bytes} bytes, {Seconds:F2} s")]
        public static partial void Completed(ILogger logger, string experiment, int round, int aggregated, int assigned, int bytes, double seconds);

        [LoggerMessage(EventId = 12, Level = LogLevel.Warning, Message = "{Experiment} round {Round} abandoned: {Reason}")]
        public static partial void Abandoned(ILogger logger, string experiment, int round, string reason);

        [LoggerMessage(EventId = 13, Level = LogLevel.Error, Message = "Round engine step failed for {Experiment} ({Repeats} more times since last logged); retrying from the round log")]
        public static partial void StepFailed(ILogger logger, Exception exception, string experiment, int repeats);

        [LoggerMessage(EventId = 14, Level = LogLevel.Warning, Message = "{Experiment} round {Round}: stored packet of {Client} turned away at aggregation: {Reason}")]
        public static partial void StoredPacketRejected(ILogger logger, string experiment, int round, string client, string reason);

        [LoggerMessage(EventId = 15, Level = LogLevel.Error, Message = "{Experiment} round {Round}: aggregation failed; the round is abandoned")]
        public static partial void AggregationFailed(ILogger logger, Exception exception, string experiment, int round);
    }
}
