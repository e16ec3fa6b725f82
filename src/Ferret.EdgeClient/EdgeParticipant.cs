using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Runtime.InteropServices;
using System.Text.Json;
using System.Threading.Channels;
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
using Microsoft.AspNetCore.SignalR;
using Microsoft.AspNetCore.SignalR.Client;
using Microsoft.Extensions.DependencyInjection;

namespace Ferret.EdgeClient;

/// <summary>How an edge client is started (the command line, see Program).</summary>
public sealed record EdgeClientOptions
{
    public required Uri Coordinator { get; init; }

    public required string Token { get; init; }

    /// <summary>The experiment to join; null picks the newest one that is not finished.</summary>
    public string? ExperimentId { get; init; }

    /// <summary>The artifact package folder; downloaded from the coordinator by fingerprint when missing.</summary>
    public required string ArtifactsDirectory { get; init; }

    public required string DataPath { get; init; }

    public DataFormat DataFormat { get; init; } = DataFormat.Auto;

    public MalformedRecords Malformed { get; init; } = MalformedRecords.Skip;

    public int MaxLength { get; init; } = 320;

    public SessionSettings Session { get; init; } = new();

    /// <summary>Exit once the experiment has ended (its last round, or a stop).</summary>
    public bool ExitWhenDone { get; init; } = true;

    /// <summary>Run the device self-test (<c>ferret doctor</c>) before joining; passes are cached.</summary>
    public bool DeviceCheck { get; init; } = true;

    /// <summary>Where passed device checks are remembered (default: <see cref="DeviceSelfTest.DefaultCacheDirectory"/>).</summary>
    public string? DeviceCheckCache { get; init; }

    /// <summary>Without an experiment id: wait for a new experiment when every one on the coordinator is finished (else exit).</summary>
    public bool WaitForExperiment { get; init; }

    /// <summary>When set, the final model is written here as a Hugging Face folder (and a package beside it) once the experiment ends.</summary>
    public string? SaveModelDirectory { get; init; }

    /// <summary>Replace an existing <see cref="SaveModelDirectory"/>.</summary>
    public bool OverwriteModel { get; init; }
}

/// <summary>
/// One edge device taking part in one experiment. It connects to the rounds hub (reconnecting with backoff
/// for as long as it runs), joins, replays the global updates it missed, trains each assignment through
/// the experiment's algorithm on its own data, sends the packet, applies every global update bit-exactly
/// and reports the resulting model fingerprint. All model work happens on one worker loop, in the order the
/// coordinator's messages arrived, so the model is never touched by two things at once.
/// </summary>
public sealed class EdgeParticipant : IAsyncDisposable
{
    private readonly EdgeClientOptions _options;
    private readonly TextWriter _out;
    private readonly CoordinatorApi _api;
    private readonly HubConnection _hub;
    private readonly Channel<object> _work = Channel.CreateUnbounded<object>(new UnboundedChannelOptions { SingleReader = true });
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

    public EdgeParticipant(EdgeClientOptions options, TextWriter output)
    {
        ArgumentNullException.ThrowIfNull(options);
        _options = options;
        _out = output;
        _api = new CoordinatorApi(options.Coordinator, options.Token);
        _hub = new HubConnectionBuilder()
            .WithUrl(new Uri(options.Coordinator, RoundsProtocol.Path), o => o.AccessTokenProvider = () => Task.FromResult<string?>(options.Token))
            .AddMessagePackProtocol()
            .WithAutomaticReconnect(Backoff.Default)
            .Build();
        _hub.ServerTimeout = TimeSpan.FromSeconds(60);
        _hub.On<RoundAssignment>(RoundsProtocol.Assignment, a => _work.Writer.TryWrite(a));
        _hub.On<RoundEvent>(RoundsProtocol.RoundEvent, e => _work.Writer.TryWrite(e));
        _hub.Reconnecting += e =>
        {
            Say($"connection lost ({e?.Message ?? "closed"}); reconnecting");
            return Task.CompletedTask;
        };
        _hub.Reconnected += async _ =>
        {
            Say("reconnected; joining again");
            try
            {
                await JoinAsync(rejoin: true, CancellationToken.None).ConfigureAwait(false);
            }
            catch (Exception e) when (e is HubException || IsConnectionLoss(e, CancellationToken.None))
            {
                // Lost again before the join went through; the next reconnect joins.
                Say($"rejoin failed: {e.Message}");
            }
        };
    }

    /// <summary>The model fingerprint after the last applied round.</summary>
    public string Fingerprint => ModelFingerprint.Compute(_global);

    /// <summary>Runs until the experiment ends (with <see cref="EdgeClientOptions.ExitWhenDone"/>) or cancellation.</summary>
    public async Task RunAsync(CancellationToken ct)
    {
        var data = LoadData();
        _clientId = await UntilReachableAsync(_api.WhoAmIAsync, ct).ConfigureAwait(false);
        Say($"client {_clientId}");
        if ((_options.ExperimentId ?? await PickExperimentAsync(ct).ConfigureAwait(false)) is not { } experimentId)
            return;
        _experimentId = experimentId;
        // Ready to train before joining: a device that is still downloading or loading its model is not assigned work.
        var descriptor = await UntilReachableAsync(c => _api.DescriptorAsync(_experimentId, c), ct).ConfigureAwait(false);
        var deviceCheck = await PrepareAsync(descriptor, data, ct).ConfigureAwait(false);
        await ConnectAsync(ct).ConfigureAwait(false);
        if (deviceCheck is { } verdict)
        {
            await _hub.InvokeAsync(RoundsProtocol.ReportDeviceCheck, _experimentId, _options.Session.Device.ToString(), verdict.Passed, verdict.Summary, ct)
                .ConfigureAwait(false);
            if (!verdict.Passed)
                throw new DeviceCheckFailedException($"device {_options.Session.Device} failed its check against the cpu, so this client does not join: {verdict.Summary}");
        }
        var join = await JoinAsync(rejoin: false, ct).ConfigureAwait(false);
        await CatchUpAsync(ct).ConfigureAwait(false);
        if (join.State is "Completed" or "Stopped")
        {
            Say($"experiment {_experimentId} is {join.State.ToLowerInvariant()}; model at round {_round}, fingerprint {Fingerprint[..16]}");
            SaveModel();
            if (_options.ExitWhenDone)
                return;
        }
        await foreach (var item in _work.Reader.ReadAllAsync(ct).ConfigureAwait(false))
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
            var all = await UntilReachableAsync(_api.ListExperimentsAsync, ct).ConfigureAwait(false);
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

    /// <summary>Calls the coordinator, retrying with backoff while it cannot be reached (not while it refuses).</summary>
    private async Task<T> UntilReachableAsync<T>(Func<CancellationToken, Task<T>> call, CancellationToken ct)
    {
        for (int attempt = 0; ; attempt++)
        {
            try
            {
                return await call(ct).ConfigureAwait(false);
            }
            catch (HttpRequestException e) when (e.StatusCode is null)
            {
                if (attempt == 0)
                    Say($"coordinator not reachable ({e.Message}); retrying with backoff");
            }
            await Task.Delay(Backoff.Default.Delay(attempt), ct).ConfigureAwait(false);
        }
    }

    private async Task ConnectAsync(CancellationToken ct)
    {
        for (int attempt = 0; ; attempt++)
        {
            try
            {
                await _hub.StartAsync(ct).ConfigureAwait(false);
                Say($"connected to {_options.Coordinator}");
                return;
            }
            catch (HttpRequestException e) when (e.StatusCode is HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden)
            {
                throw new UnauthorizedAccessException($"The coordinator refused the token ({(int)e.StatusCode}); enrol again or check --token.", e);
            }
            catch (HttpRequestException e)
            {
                if (attempt == 0)
                    Say($"coordinator not reachable ({e.Message}); retrying with backoff");
            }
            await Task.Delay(Backoff.Default.Delay(attempt), ct).ConfigureAwait(false);
        }
    }

    private async Task<JoinResult> JoinAsync(bool rejoin, CancellationToken ct)
    {
        var capabilities = JsonSerializer.Serialize(new
        {
            device = _options.Session.Device.ToString(),
            os = RuntimeInformation.OSDescription,
            arch = RuntimeInformation.ProcessArchitecture.ToString(),
            cores = Environment.ProcessorCount,
            memoryBytes = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes,
            runtime = RuntimeInformation.FrameworkDescription,
        });
        var join = await _hub.InvokeAsync<JoinResult>(RoundsProtocol.Join, _experimentId, capabilities, ct).ConfigureAwait(false);
        // After a reconnect the worker first replays what was missed (and stops if the experiment ended meanwhile).
        if (rejoin)
            _work.Writer.TryWrite(join);
        if (join.OpenAssignment is { } pending)
            _work.Writer.TryWrite(pending);
        return join;
    }

    private async Task<(bool Passed, string Summary)?> PrepareAsync(ExperimentDescriptor descriptor, List<InstructionExample> data, CancellationToken ct)
    {
        descriptor.Validate();
        if (!File.Exists(Path.Combine(_options.ArtifactsDirectory, ArtifactManifest.FileName)))
        {
            Say($"artifact package not in '{_options.ArtifactsDirectory}'; downloading {descriptor.ArtifactFingerprint[..16]} from the coordinator");
            await _api.DownloadArtifactAsync(descriptor.ArtifactFingerprint, _options.ArtifactsDirectory, new Progress<string>(Say), ct)
                .ConfigureAwait(false);
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
        Say($"{descriptor.Algorithm} on {package.Manifest.ModelFamily} ({descriptor.ParameterCount:N0} parameters), {data.Count} local examples, device {_options.Session.Device}");
        return deviceCheck;
    }

    /// <summary>Replays every completed global update after the current round.</summary>
    private async Task CatchUpAsync(CancellationToken ct)
    {
        var updates = await _api.UpdatesAfterAsync(_experimentId, _round, ct).ConfigureAwait(false);
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
                    Apply(Wire.Deserialize<GlobalUpdate>(inline));
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
        try
        {
            bool agrees = _lastReportAgreed = await _hub.InvokeAsync<bool>(RoundsProtocol.ReportFingerprint, _experimentId, _round, fingerprint, ct).ConfigureAwait(false);
            Say(agrees ? $"round {_round} fingerprint {fingerprint[..16]} agrees" : $"round {_round} fingerprint {fingerprint[..16]} DISAGREES with another participant");
        }
        catch (Exception e) when (e is HubException || IsConnectionLoss(e, ct))
        {
            Say($"could not report the fingerprint of round {_round}: {e.Message}");
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
        catch (Exception e) when (e is InvalidOperationException or ArgumentException or OutOfMemoryException or Microsoft.ML.OnnxRuntime.OnnxRuntimeException)
        {
            await FailAsync(a, $"training failed: {e.Message}", ct).ConfigureAwait(false);
            return false;
        }
        var bytes = Wire.Serialize(packet);
        var result = await SubmitAsync(a, bytes, ct).ConfigureAwait(false);
        Say(string.Create(CultureInfo.InvariantCulture,
            $"round {a.Round}: trained in {timer.Elapsed.TotalSeconds:F1} s, train loss {packet.Stats.Loss:F4}, packet {bytes.Length:N0} bytes -> {(result.Accepted ? "accepted" : "rejected: " + result.Reason)}"));
        return false;
    }

    /// <summary>Sends the packet, in one message or streamed in chunks; retries across reconnects until the deadline.</summary>
    private async Task<SubmitResult> SubmitAsync(RoundAssignment a, byte[] packet, CancellationToken ct)
    {
        for (int attempt = 0; ; attempt++)
        {
            try
            {
                return packet.Length <= RoundsProtocol.ChunkBytes
                    ? await _hub.InvokeAsync<SubmitResult>(RoundsProtocol.SubmitUpdate, a.ExperimentId, a.Round, packet, ct).ConfigureAwait(false)
                    : await _hub.InvokeAsync<SubmitResult>(RoundsProtocol.SubmitUpdateStream, a.ExperimentId, a.Round, Chunks(packet), ct).ConfigureAwait(false);
            }
            catch (Exception e) when (IsConnectionLoss(e, ct) && DateTimeOffset.UtcNow < a.DeadlineUtc)
            {
                // Not connected right now (the coordinator restarts, the network drops): wait for the reconnect.
                if (attempt == 0)
                    Say($"round {a.Round}: packet not delivered ({e.Message}); retrying until the deadline");
                await Task.Delay(Backoff.Default.Delay(attempt), ct).ConfigureAwait(false);
            }
            catch (Exception e) when (IsConnectionLoss(e, ct))
            {
                return new SubmitResult { Accepted = false, Reason = $"not delivered before the deadline: {e.Message}" };
            }
        }
    }

    /// <summary>The connection is down or dropped mid-call (not a refusal by the coordinator, not our own cancellation).</summary>
    private static bool IsConnectionLoss(Exception e, CancellationToken ct) =>
        e is InvalidOperationException or IOException or System.Net.WebSockets.WebSocketException or HttpRequestException
        || (e is OperationCanceledException && !ct.IsCancellationRequested);

    private static async IAsyncEnumerable<byte[]> Chunks(byte[] packet)
    {
        for (int offset = 0; offset < packet.Length; offset += RoundsProtocol.ChunkBytes)
        {
            yield return packet.AsSpan(offset, Math.Min(RoundsProtocol.ChunkBytes, packet.Length - offset)).ToArray();
            await Task.Yield();
        }
    }

    private async Task FailAsync(RoundAssignment a, string reason, CancellationToken ct)
    {
        Say($"round {a.Round}: {reason}");
        try
        {
            await _hub.InvokeAsync(RoundsProtocol.ReportFailure, a.ExperimentId, a.Round, reason, ct).ConfigureAwait(false);
        }
        catch (Exception e) when (e is HubException || IsConnectionLoss(e, ct))
        {
            Say($"round {a.Round}: could not report the failure: {e.Message}");
        }
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
        await _hub.DisposeAsync().ConfigureAwait(false);
        _trainer?.Dispose();
        _api.Dispose();
    }
}
