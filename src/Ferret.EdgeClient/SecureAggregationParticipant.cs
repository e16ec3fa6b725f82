using System.Threading.Channels;
using Ferret.Core.Algorithms;
using Ferret.Core.Packets;
using Ferret.Core.Privacy;
using Ferret.Core.Protocol;
using Microsoft.AspNetCore.SignalR;
using Microsoft.AspNetCore.SignalR.Client;

namespace Ferret.EdgeClient;

/// <summary>
/// An edge client's side of secure aggregation. For each secure assignment it keeps one protocol session
/// (<see cref="SecureAggregationClient"/>): it advertises fresh keys before training starts, answers the
/// share-keys request while the model trains, masks the quantized gamma once training is done and the shares
/// are in, and reveals its shares when asked. Stage messages are handled on their own loop, never on the
/// connection's receive loop or the model worker, and each is retried across reconnects until its deadline.
/// </summary>
internal sealed class SecureAggregationParticipant : IDisposable
{
    private readonly HubConnection _hub;
    private readonly ExperimentDescriptor _descriptor;
    private readonly int _gammaLength;
    private readonly Action<string> _say;
    private readonly Func<Exception, CancellationToken, bool> _isConnectionLoss;
    private readonly Channel<object> _work = Channel.CreateUnbounded<object>(new UnboundedChannelOptions { SingleReader = true });
    private readonly Dictionary<int, Session> _sessions = [];
    private readonly Lock _gate = new();

    public SecureAggregationParticipant(HubConnection hub, ExperimentDescriptor descriptor, Action<string> say, Func<Exception, CancellationToken, bool> isConnectionLoss)
    {
        ArgumentNullException.ThrowIfNull(hub);
        ArgumentNullException.ThrowIfNull(descriptor);
        _hub = hub;
        _descriptor = descriptor;
        _gammaLength = descriptor.BlockLengths.Length * descriptor.Settings.CandidateSeeds;
        _say = say;
        _isConnectionLoss = isConnectionLoss;
        hub.On<ShareKeysRequest>(RoundsProtocol.ShareKeysRequest, r => _work.Writer.TryWrite(r));
        hub.On<MaskedInputRequest>(RoundsProtocol.MaskedInputRequest, r => _work.Writer.TryWrite(r));
        hub.On<UnmaskRequest>(RoundsProtocol.UnmaskRequest, r => _work.Writer.TryWrite(r));
    }

    public string ClientId { get; set; } = "";

    /// <summary>Stage 0, before training: fresh keys for the round. False when the round cannot use this client any more.</summary>
    public async Task<bool> BeginAsync(RoundAssignment assignment, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(assignment);
        var info = assignment.Privacy ?? throw new InvalidDataException($"Round {assignment.Round} of a secure experiment came without its privacy numbers.");
        Session session;
        lock (_gate)
        {
            if (!_sessions.TryGetValue(assignment.Round, out session!))
            {
                var plan = PrivacyPlan.Create(_descriptor.Privacy!, _gammaLength, assignment.Round, info.Assigned, info.Eligible, info.ClipNorm);
                session = new Session(new SecureAggregationClient(_descriptor.Id, assignment.Round, ClientId, plan.VectorLength), plan);
                _sessions[assignment.Round] = session;
                foreach (var old in _sessions.Keys.Where(r => r < assignment.Round - 1).ToList())
                {
                    _sessions[old].Client.Dispose();
                    _sessions.Remove(old);
                }
            }
        }
        var result = await InvokeAsync(RoundsProtocol.AdvertiseKeys, assignment.Round, Wire.Serialize(session.Client.Advertise()), info.KeysDeadlineUtc, ct).ConfigureAwait(false);
        if (!result.Accepted)
        {
            _say($"round {assignment.Round}: keys refused: {result.Reason}");
            return false;
        }
        return true;
    }

    /// <summary>Training is done: encodes the packet for the sum (dense, clipped or clamped, quantized, with this client's share of the noise).</summary>
    public void InputReady(int round, FerretUpdate packet)
    {
        ArgumentNullException.ThrowIfNull(packet);
        Session? session;
        lock (_gate)
            _sessions.TryGetValue(round, out session);
        if (session is null)
            return;
        var input = PrivateEncoding.ForMasking(packet, session.Plan, _descriptor.Settings.CandidateSeeds, PlatformSecrets.Instance);
        _work.Writer.TryWrite(new Ready(round, input, packet.Stats));
    }

    /// <summary>Handles stage requests until cancelled.</summary>
    public async Task RunAsync(CancellationToken ct)
    {
        await foreach (var item in _work.Reader.ReadAllAsync(ct).ConfigureAwait(false))
        {
            int round = item switch
            {
                ShareKeysRequest r => r.Round,
                MaskedInputRequest r => r.Round,
                UnmaskRequest r => r.Round,
                Ready r => r.Round,
                _ => -1,
            };
            Session? session;
            lock (_gate)
                _sessions.TryGetValue(round, out session);
            if (session is null)
            {
                _say($"round {round}: a secure-aggregation message for a round this client holds no keys for (restarted?); ignored");
                continue;
            }
            try
            {
                await HandleAsync(session, item, ct).ConfigureAwait(false);
            }
            catch (SecureAggregationException e)
            {
                _say($"round {round}: secure aggregation refused: {e.Message}");
                if (!session.Submitted)
                    await FailAsync(round, $"secure aggregation: {e.Message}", ct).ConfigureAwait(false);
            }
        }
    }

    private async Task HandleAsync(Session session, object item, CancellationToken ct)
    {
        int round = session.Client.Round;
        switch (item)
        {
            case ShareKeysRequest r:
                var shares = session.Client.ShareKeys(r);
                Report(round, "shares for " + r.Neighbours.Length + " neighbours", await InvokeAsync(RoundsProtocol.ShareKeys, round, Wire.Serialize(shares), r.DeadlineUtc, ct).ConfigureAwait(false));
                break;
            case MaskedInputRequest r:
                session.Request = r;
                await TrySubmitAsync(session, ct).ConfigureAwait(false);
                break;
            case Ready ready:
                session.Input = ready.Input;
                session.Stats = ready.Stats;
                await TrySubmitAsync(session, ct).ConfigureAwait(false);
                break;
            case UnmaskRequest r:
                var revealed = session.Client.Unmask(r);
                Report(round, $"unmasking ({r.Survivors.Length} survivors, {r.Dropped.Length} dropped among its neighbours)",
                    await InvokeAsync(RoundsProtocol.Unmask, round, Wire.Serialize(revealed), r.DeadlineUtc, ct).ConfigureAwait(false));
                break;
        }
    }

    private async Task TrySubmitAsync(Session session, CancellationToken ct)
    {
        if (session.Submitted || session.Request is null || session.Input is null)
            return;
        var masked = session.Client.Mask(session.Request, session.Input, session.Stats);
        var bytes = Wire.Serialize(masked);
        session.Submitted = true;
        Report(session.Client.Round, $"masked input {bytes.Length:N0} bytes", await InvokeAsync(RoundsProtocol.SubmitMaskedInput, session.Client.Round, bytes, session.Request.DeadlineUtc, ct).ConfigureAwait(false));
    }

    private void Report(int round, string what, SubmitResult result) =>
        _say($"round {round}: {what} -> {(result.Accepted ? "accepted" : "rejected: " + result.Reason)}");

    /// <summary>Invokes a stage method, retrying across reconnects until the stage's deadline.</summary>
    private async Task<SubmitResult> InvokeAsync(string method, int round, byte[] payload, DateTimeOffset deadlineUtc, CancellationToken ct)
    {
        for (int attempt = 0; ; attempt++)
        {
            try
            {
                return await _hub.InvokeAsync<SubmitResult>(method, _descriptor.Id, round, payload, ct).ConfigureAwait(false);
            }
            catch (Exception e) when (_isConnectionLoss(e, ct) && DateTimeOffset.UtcNow < deadlineUtc)
            {
                if (attempt == 0)
                    _say($"round {round}: {method} not delivered ({e.Message}); retrying until the stage deadline");
                await Task.Delay(Backoff.Default.Delay(attempt), ct).ConfigureAwait(false);
            }
            catch (Exception e) when (_isConnectionLoss(e, ct))
            {
                return new SubmitResult { Accepted = false, Reason = $"not delivered before the stage deadline: {e.Message}" };
            }
        }
    }

    private async Task FailAsync(int round, string reason, CancellationToken ct)
    {
        try
        {
            await _hub.InvokeAsync(RoundsProtocol.ReportFailure, _descriptor.Id, round, reason, ct).ConfigureAwait(false);
        }
        catch (Exception e) when (e is HubException || _isConnectionLoss(e, ct))
        {
            _say($"round {round}: could not report the failure: {e.Message}");
        }
    }

    public void Dispose()
    {
        lock (_gate)
        {
            foreach (var s in _sessions.Values)
                s.Client.Dispose();
            _sessions.Clear();
        }
    }

    private sealed record Ready(int Round, uint[] Input, TrainingStats Stats);

    private sealed class Session(SecureAggregationClient client, PrivacyPlan plan)
    {
        public SecureAggregationClient Client => client;

        public PrivacyPlan Plan => plan;

        public MaskedInputRequest? Request { get; set; }

        public uint[]? Input { get; set; }

        public TrainingStats? Stats { get; set; }

        public bool Submitted { get; set; }
    }
}
