using System.Diagnostics;
using System.Globalization;
using Ferret.Core.Algorithms;
using Ferret.Core.Packets;
using Ferret.Core.Parameters;
using Ferret.Core.Protocol;
using Ferret.Core.Randomness;
using Ferret.Onnx.Artifacts;
using Ferret.Training.Data;
using Ferret.Training.Runtime;
using Ferret.Training.Simulation;
using Ferret.Training.Tokenization;

namespace Ferret.EdgeClient;

/// <summary>
/// One edge device taking part in one experiment: the model work. It prepares the model (downloading the
/// package when it lacks it), replays the global updates it missed, trains each assignment through the
/// experiment's algorithm on its own data, sends the packet, applies every global update bit-exactly and
/// reports the resulting model fingerprint. All model work happens on one worker loop, in the order the
/// coordinator's messages arrived (<see cref="CoordinatorSession"/> keeps the connection), so the model is
/// never touched by two things at once. Every call to the coordinator waits out transient failures.
/// </summary>
public sealed class EdgeParticipant : IAsyncDisposable
{
    private readonly EdgeClientOptions _options;
    private readonly TextWriter _out;
    private readonly CoordinatorApi _api;
    private readonly CoordinatorSession _session;
    private string _experimentId = "";
    private ExperimentDescriptor? _descriptor;
    private IFederatedAlgorithm? _algorithm;
    private OnnxTrainer? _trainer;
    private OnnxLocalModel? _model;
    private float[] _global = [];
    private int _round;
    private int _lastTrained;
    private string _clientId = "";
    private ArtifactPackage? _package;
    private bool _lastReportAgreed = true;
    private SecureAggregationParticipant? _secure;

    public EdgeParticipant(EdgeClientOptions options, TextWriter output)
    {
        ArgumentNullException.ThrowIfNull(options);
        _options = options;
        _out = output;
        _api = new CoordinatorApi(options.Coordinator, options.Token);
        _session = new CoordinatorSession(options.Coordinator, options.Token, Say, () => CoordinatorSession.DescribeDevice(options.Session.Device.ToString()));
    }

    /// <summary>The model fingerprint after the last applied round.</summary>
    public string Fingerprint => ModelFingerprint.Compute(_global);

    /// <summary>Runs until the experiment ends (with <see cref="EdgeClientOptions.ExitWhenDone"/>) or cancellation.</summary>
    public async Task RunAsync(CancellationToken ct)
    {
        var data = LoadData();
        _clientId = await Transient.RetryAsync("checking the client token", _api.WhoAmIAsync, Say, ct).ConfigureAwait(false);
        Say($"client {_clientId}");
        if ((_options.ExperimentId ?? await PickExperimentAsync(ct).ConfigureAwait(false)) is not { } experimentId)
            return;
        _experimentId = experimentId;
        // Ready to train before joining: a device that is still downloading or loading its model is not assigned work.
        var descriptor = await Transient.RetryAsync("fetching the experiment", c => _api.DescriptorAsync(_experimentId, c), Say, ct).ConfigureAwait(false);
        var deviceCheck = await PrepareAsync(descriptor, data, ct).ConfigureAwait(false);
        if (deviceCheck is { } verdict)
        {
            await _session.ReportDeviceCheckAsync(_experimentId, _options.Session.Device.ToString(), verdict.Passed, verdict.Summary, ct).ConfigureAwait(false);
            if (!verdict.Passed)
                throw new DeviceCheckFailedException($"device {_options.Session.Device} failed its check against the cpu, so this client does not join: {verdict.Summary}");
        }
        var secureLoop = _secure is null ? Task.CompletedTask : _secure.RunAsync(ct);
        var join = await _session.StartAsync(_experimentId, ct).ConfigureAwait(false);
        await CatchUpAsync(ct).ConfigureAwait(false);
        if (join.State is "Completed" or "Stopped")
        {
            Say($"experiment {_experimentId} is {join.State.ToLowerInvariant()}; model at round {_round}, fingerprint {Fingerprint[..16]}");
            SaveModel();
            if (_options.ExitWhenDone)
                return;
        }
        await foreach (var item in _session.Messages.ReadAllAsync(ct).ConfigureAwait(false))
        {
            bool ended = item switch
            {
                RoundAssignment a => await TrainAsync(a, ct).ConfigureAwait(false),
                RoundEvent e => await OnRoundEventAsync(e, ct).ConfigureAwait(false),
                JoinResult rejoined => await OnRejoinedAsync(rejoined, ct).ConfigureAwait(false),
                _ => false,
            };
            if (ended)
            {
                Say($"experiment {_experimentId} ended at round {_round}; final fingerprint {Fingerprint}");
                SaveModel();
                if (_options.ExitWhenDone)
                    return;
            }
        }
    }

    private List<InstructionExample> LoadData()
    {
        var set = InstructionData.Read(_options.DataPath, _options.DataFormat, _options.Malformed);
        foreach (var p in set.Problems.Take(5))
            Say($"skipped {p}");
        if (set.Problems.Count > 5)
            Say($"skipped {set.Problems.Count - 5} more malformed records in {_options.DataPath}");
        if (set.Examples.Count == 0)
            throw new InvalidDataException($"'{_options.DataPath}' holds no usable examples.");
        return [.. set.Examples];
    }

    /// <summary>The newest experiment not finished; null (nothing to do) when every experiment is finished and waiting was not asked for.</summary>
    private async Task<string?> PickExperimentAsync(CancellationToken ct)
    {
        for (int attempt = 0; ; attempt++)
        {
            var all = await Transient.RetryAsync("listing experiments", _api.ListExperimentsAsync, Say, ct).ConfigureAwait(false);
            var pick = all.Where(e => e.State is "Created" or "Running").OrderByDescending(e => e.CreatedUtc).FirstOrDefault();
            if (pick is not null)
            {
                Say($"joining experiment {pick.Id} ({pick.Name}, {pick.Algorithm}, {pick.Rounds} rounds)");
                return pick.Id;
            }
            if (all.Count > 0 && !_options.WaitForExperiment)
            {
                Say($"every experiment on {_options.Coordinator} is finished ({all.Count}, newest {all.OrderByDescending(e => e.CreatedUtc).First().Id}); nothing to join. Pass --wait to wait for a new one, or --experiment ID.");
                return null;
            }
            if (attempt == 0)
                Say(all.Count == 0 ? "no experiment yet; waiting for one" : "every experiment is finished; waiting for a new one (--wait)");
            await Task.Delay(Backoff.Default.Delay(attempt), ct).ConfigureAwait(false);
        }
    }

    private async Task<(bool Passed, string Summary)?> PrepareAsync(ExperimentDescriptor descriptor, List<InstructionExample> data, CancellationToken ct)
    {
        descriptor.Validate();
        if (!File.Exists(Path.Combine(_options.ArtifactsDirectory, ArtifactManifest.FileName)))
        {
            Say($"artifact package not in '{_options.ArtifactsDirectory}'; downloading {descriptor.ArtifactFingerprint[..16]} from the coordinator");
            await _api.DownloadArtifactAsync(descriptor.ArtifactFingerprint, _options.ArtifactsDirectory, Say, ct).ConfigureAwait(false);
        }
        var package = _package = ArtifactPackage.Open(_options.ArtifactsDirectory);
        if (package.Manifest.ParametersSha256 != descriptor.ArtifactFingerprint)
        {
            throw new InvalidDataException(
                $"'{_options.ArtifactsDirectory}' holds the model {package.Manifest.ParametersSha256[..16]}, but experiment {descriptor.Id} starts from {descriptor.ArtifactFingerprint[..16]}.");
        }
        (bool Passed, string Summary)? deviceCheck = null;
        if (_options.DeviceCheck)
        {
            var verdict = await Task.Run(() => DeviceSelfTest.Run(package, _options.Session, _options.DeviceCheckCache ?? DeviceSelfTest.DefaultCacheDirectory(), Say), ct)
                .ConfigureAwait(false);
            Say($"device check {verdict.Summary}");
            if (!verdict.Passed)
                return verdict;
            deviceCheck = verdict;
        }
        _descriptor = descriptor;
        _algorithm = FederatedAlgorithms.Create(descriptor, descriptor.Blocks(package.Layout));
        _global = package.LoadParameters(verify: true);
        _trainer = new OnnxTrainer(package.Layout, package.TrainGraphPath, package.EvalGraphPath, _options.Session);
        var encoder = new ExampleEncoder(Tokenizers.FromPackage(package), _options.MaxLength);
        _model = new OnnxLocalModel(_trainer, encoder, data.Select(encoder.Encode).ToList(), descriptor.Settings.MicroBatches);
        if (descriptor.Privacy?.SecureAggregation is not null)
            _secure = new SecureAggregationParticipant(_session.Hub, descriptor, Say, Transient.Is) { ClientId = _clientId };
        Say($"{descriptor.Algorithm} on {package.Manifest.ModelFamily} ({descriptor.ParameterCount:N0} parameters), {data.Count} local examples, device {_options.Session.Device}");
        return deviceCheck;
    }

    /// <summary>Largest run-length expansion a global update of this experiment needs.</summary>
    private int MaxUpdateEntries => (int)Math.Min(int.MaxValue, PacketLimits.MaxEntries(_descriptor!));

    /// <summary>Replays every completed global update after the current round, waiting out a coordinator that is down.</summary>
    private async Task CatchUpAsync(CancellationToken ct)
    {
        var updates = await Transient.RetryAsync("catching up", c => _api.UpdatesAfterAsync(_experimentId, _round, MaxUpdateEntries, c), Say, ct).ConfigureAwait(false);
        if (updates.Length == 0)
            return;
        int from = _round;
        foreach (var u in updates)
            Apply(u);
        Say($"caught up from round {from} to {_round} ({updates.Length} global updates replayed)");
        await ReportFingerprintAsync(ct).ConfigureAwait(false);
    }

    private void Apply(GlobalUpdate update)
    {
        if (update.ExperimentId != _experimentId)
            throw new InvalidDataException($"A global update of experiment '{update.ExperimentId}' arrived for '{_experimentId}'.");
        if (update.Round <= _round)
            return;
        _algorithm!.Apply(update, _global);
        _round = update.Round;
    }

    private async Task<bool> OnRoundEventAsync(RoundEvent e, CancellationToken ct)
    {
        if (e.ExperimentId != _experimentId)
            return false;
        switch (e.Kind)
        {
            case RoundEvent.Completed when e.Round > _round:
                if (e.GlobalUpdate is { } inline && e.BaseRound == _round)
                {
                    Apply(Wire.Deserialize<GlobalUpdate>(inline, MaxUpdateEntries));
                    Say(string.Create(CultureInfo.InvariantCulture,
                        $"round {e.Round} applied: {e.Aggregated}/{e.Assigned} packets aggregated, mean train loss {e.MeanTrainLoss:F4}, update {e.BytesDown:N0} bytes"));
                    await ReportFingerprintAsync(ct).ConfigureAwait(false);
                }
                else
                {
                    await CatchUpAsync(ct).ConfigureAwait(false);
                }
                break;
            case RoundEvent.Abandoned:
                Say($"round {e.Round} abandoned: {e.Detail}");
                break;
        }
        return e.ExperimentEnded;
    }

    /// <summary>Back after a reconnect: replays the updates missed meanwhile; true when the experiment ended.</summary>
    private async Task<bool> OnRejoinedAsync(JoinResult join, CancellationToken ct)
    {
        await CatchUpAsync(ct).ConfigureAwait(false);
        return join.State is "Completed" or "Stopped";
    }

    private async Task ReportFingerprintAsync(CancellationToken ct)
    {
        if (_round == 0)
            return;
        var fingerprint = Fingerprint;
        if (await _session.ReportFingerprintAsync(_round, fingerprint, ct).ConfigureAwait(false) is bool agrees)
        {
            _lastReportAgreed = agrees;
            Say(agrees ? $"round {_round} fingerprint {fingerprint[..16]} agrees" : $"round {_round} fingerprint {fingerprint[..16]} DISAGREES with another participant");
        }
    }

    /// <summary>Trains one assignment and submits its packet; returns false (the experiment goes on).</summary>
    private async Task<bool> TrainAsync(RoundAssignment a, CancellationToken ct)
    {
        if (a.ExperimentId != _experimentId || a.Round <= _lastTrained)
            return false;
        if (_round < a.BaseRound)
            await CatchUpAsync(ct).ConfigureAwait(false);
        if (_round != a.BaseRound)
        {
            await FailAsync(a, $"model is at round {_round} but the assignment builds on round {a.BaseRound}", ct).ConfigureAwait(false);
            return false;
        }
        _lastTrained = a.Round;
        // Secure rounds start with fresh keys, so the key stages run while the model trains.
        if (_secure is not null && !await _secure.BeginAsync(a, ct).ConfigureAwait(false))
        {
            await FailAsync(a, "secure aggregation: this client's keys did not reach the round in time", ct).ConfigureAwait(false);
            return false;
        }
        KillSwitch.BeforeTraining(a.Round);
        Say($"round {a.Round}: training ({_descriptor!.Settings.LocalSteps} local steps, deadline {a.DeadlineUtc:HH:mm:ss} UTC)");
        var timer = Stopwatch.StartNew();
        ClientUpdate packet;
        try
        {
            _global.CopyTo(_trainer!.Parameters, 0);
            var clientSeed = SeedMix.Of(_clientId);
            _model!.StartRound(unchecked((int)SeedMix.Combine(_descriptor.ExperimentSeed, (ulong)a.Round, clientSeed, 1)));
            packet = await Task.Run(() => _algorithm!.Train(a.Round, _model, SeedMix.Random(_descriptor.ExperimentSeed, (ulong)a.Round, clientSeed, 2), ct), ct)
                .ConfigureAwait(false);
        }
        catch (Exception e) when (e is InvalidOperationException or ArgumentException or OutOfMemoryException or InvalidDataException
            or Microsoft.ML.OnnxRuntime.OnnxRuntimeException)
        {
            await FailAsync(a, $"training failed: {e.Message}", ct).ConfigureAwait(false);
            return false;
        }
        if (_secure is not null)
        {
            // Nothing leaves in the clear: the masked input goes out once the neighbours' shares are in.
            _secure.InputReady(a.Round, (FerretUpdate)packet);
            Say(string.Create(CultureInfo.InvariantCulture, $"round {a.Round}: trained in {timer.Elapsed.TotalSeconds:F1} s, train loss {packet.Stats.Loss:F4}; masking"));
            return false;
        }
        var bytes = Wire.Serialize(packet);
        var result = await _session.SubmitAsync(a, bytes, ct).ConfigureAwait(false);
        Say(string.Create(CultureInfo.InvariantCulture,
            $"round {a.Round}: trained in {timer.Elapsed.TotalSeconds:F1} s, train loss {packet.Stats.Loss:F4}, packet {bytes.Length:N0} bytes -> {(result.Accepted ? "accepted" : "rejected: " + result.Reason)}"));
        return false;
    }

    private async Task FailAsync(RoundAssignment a, string reason, CancellationToken ct)
    {
        Say($"round {a.Round}: {reason}");
        await _session.ReportFailureAsync(a, reason, ct).ConfigureAwait(false);
    }

    /// <summary>With --save-model: the final model as a Hugging Face folder and a package, unless it disagreed with another participant.</summary>
    private void SaveModel()
    {
        if (_options.SaveModelDirectory is not { } dir || _package is null || _descriptor is null)
            return;
        if (!_lastReportAgreed)
        {
            Say($"not saving the model: its fingerprint {Fingerprint[..16]} disagrees with another participant's for round {_round}");
            return;
        }
        var saved = TunedModel.Save(_package, _global, dir, TunedModel.DefaultPackageDirectory(dir), _options.OverwriteModel,
            TunedModel.Provenance(_descriptor, _round));
        Say($"model saved: {saved.HuggingFaceDirectory} (round {_round}, fingerprint {saved.Fingerprint[..16]}); package {saved.PackageDirectory}");
    }

    private void Say(string message)
    {
        lock (_out)
            _out.WriteLine($"[{DateTime.Now:HH:mm:ss}] {message}");
    }

    public async ValueTask DisposeAsync()
    {
        await _session.DisposeAsync().ConfigureAwait(false);
        _secure?.Dispose();
        _trainer?.Dispose();
        _api.Dispose();
    }
}
