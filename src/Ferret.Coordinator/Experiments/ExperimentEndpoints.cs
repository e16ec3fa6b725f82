using System.Globalization;
using System.Text.Json;
using Ferret.Coordinator.Artifacts;
using Ferret.Coordinator.Persistence;
using Ferret.Coordinator.Privacy;
using Ferret.Coordinator.Rounds;
using Ferret.Coordinator.ScaleOut;
using Ferret.Coordinator.Security;
using Ferret.Core.Algorithms;
using Ferret.Core.Packets;
using Ferret.Onnx.Artifacts;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;

namespace Ferret.Coordinator.Experiments;

/// <summary>
/// What an admin sends to create an experiment. Unset hyper-parameters take the package's recommended values
/// (its manifest), else the algorithm's reference values; the experiment's status shows the effective ones.
/// </summary>
public sealed record CreateExperimentRequest(
    string Name, string Algorithm, string Artifact, int Rounds, double Fraction, ulong? ExperimentSeed = null,
    int? LocalSteps = null, int? MicroBatches = null, double? LocalLearningRate = null, int? CandidateSeeds = null, double? ServerLearningRate = null,
    int? MinClients = null, int? RoundDeadlineSeconds = null, SecureAggregationRequest? SecureAggregation = null, DifferentialPrivacyRequest? DifferentialPrivacy = null);

public sealed record RoundView(
    int Round, string State, DateTimeOffset OpenedUtc, DateTimeOffset DeadlineUtc, DateTimeOffset? ClosedUtc, int Aggregated, int Missing,
    RoundMetrics? Metrics, string? Reason)
{
    /// <summary>A round as the log holds it: metrics JSON for a completed round, the reason for an abandoned one.</summary>
    public static RoundView Of(RoundRecord r)
    {
        ArgumentNullException.ThrowIfNull(r);
        return new(r.Round, r.State.ToString(), r.OpenedUtc, r.DeadlineUtc, r.ClosedUtc, r.Aggregated, r.Missing,
            r.State == RoundState.Completed && r.MetricsJson is { } m ? JsonSerializer.Deserialize<RoundMetrics>(m) : null,
            r.State == RoundState.Abandoned ? r.MetricsJson : null);
    }
}

/// <summary>
/// An experiment's status: its effective settings, how many joined clients are connected now (a round opens at
/// <c>MinClients</c>), the round log when asked for one experiment, and the rejections at the door.
/// </summary>
public sealed record ExperimentView(
    string Id, string Name, string Algorithm, string State, int Rounds, double Fraction, int MinClients, int RoundDeadlineSeconds, int CandidateSeeds, int Blocks,
    long Parameters, string ArtifactFingerprint, DateTimeOffset CreatedUtc, IReadOnlyList<RoundView>? RoundLog, long? Rejections = null,
    OpenRoundView? OpenRound = null, ModelFingerprintView? ModelFingerprint = null, int? LocalSteps = null, double? LocalLearningRate = null,
    double? ServerLearningRate = null, ExperimentOwner? Owner = null, AlgorithmSettings? Settings = null, int ConnectedClients = 0, PrivacyView? Privacy = null);

public sealed record AssignmentView(string ClientId, string State, string? PacketSha256, long PacketBytes, DateTimeOffset? ReceivedUtc, double? TrainLoss, string? Reason);

public sealed record FingerprintView(string ClientId, string Fingerprint, DateTimeOffset ReportedUtc);

public sealed record RoundDetailView(RoundView Round, IReadOnlyList<AssignmentView> Assignments, IReadOnlyList<FingerprintView> Fingerprints, bool FingerprintsAgree);

/// <summary>Experiments: create from an artifact package, list, inspect, stop, and fetch what clients need.</summary>
public static class ExperimentEndpoints
{
    public const string MessagePackType = "application/x-msgpack";

    public static RouteGroupBuilder MapExperiments(this IEndpointRouteBuilder app)
    {
        var api = app.MapGroup("/api/experiments").WithTags("Experiments");
        api.MapPost("/", Create).RequireAuthorization(Policies.Admin)
            .WithSummary("Creates an experiment over an artifact package; unset hyper-parameters take the package's recommended values, else the algorithm's reference values.");
        api.MapGet("/", List).RequireAuthorization(Policies.Observer).WithSummary("Every experiment with its state, effective settings and connected clients.");
        api.MapGet("/{id}", Get).RequireAuthorization(Policies.Observer)
            .WithSummary("One experiment's status: effective settings, connected clients, the round log and the rejection count.");
        api.MapPost("/{id}/stop", Stop).RequireAuthorization(Policies.Admin).WithSummary("Stops an experiment; its open round is abandoned.");
        api.MapGet("/{id}/descriptor", Descriptor).RequireAuthorization(Policies.Observer)
            .WithSummary("The MessagePack experiment descriptor a client needs (candidate seeds, blocks, settings).");
        api.MapGet("/{id}/updates", Updates).RequireAuthorization(Policies.Observer)
            .WithSummary("The completed global updates after a round, as a MessagePack array: what a lagging client replays.");
        api.MapGet("/{id}/rounds/{round:int}", RoundDetail).RequireAuthorization(Policies.Admin)
            .WithSummary("One round in full: every assignment and the fingerprints reported.");
        api.MapGet("/{id}/model", ModelEndpoint.Download).RequireAuthorization(Policies.Admin)
            .WithSummary("The global model at a round (default: the last closed) as a Hugging Face folder in a tar (default) or zip, replayed from the round log.");
        api.MapWatchViews(app);
        return api;
    }

    private static Results<Created<ExperimentView>, ValidationProblem> Create(
        CreateExperimentRequest? request, IRoundLog log, IOptions<CoordinatorOptions> options, TimeProvider clock, ArtifactIndex artifacts)
    {
        var errors = new Dictionary<string, string[]>();
        if (request is null)
            return TypedResults.ValidationProblem(new Dictionary<string, string[]> { ["body"] = ["A JSON body is required."] });
        if (string.IsNullOrWhiteSpace(request.Name) || request.Name.Length > CallerInput.MaxNameChars)
            errors["name"] = [$"Required, at most {CallerInput.MaxNameChars} characters."];
        if (!FederatedAlgorithms.Names.Contains(request.Algorithm))
            errors["algorithm"] = [$"'{Shorten(request.Algorithm)}' is not one of {string.Join(", ", FederatedAlgorithms.Names)}."];
        if (request.Rounds is < 1 or > 100_000)
            errors["rounds"] = [$"{request.Rounds} is outside 1..100000."];
        if (!(request.Fraction is > 0 and <= 1))
            errors["fraction"] = [$"{request.Fraction.ToString(CultureInfo.InvariantCulture)} is outside (0, 1]."];
        ArtifactPackage? package = null;
        if (string.IsNullOrWhiteSpace(request.Artifact) || request.Artifact.Length > CallerInput.MaxNameChars || request.Artifact.Contains("..", StringComparison.Ordinal)
            || Path.IsPathRooted(request.Artifact) || request.Artifact.IndexOfAny(['/', '\\', '%']) >= 0)
        {
            errors["artifact"] = ["Name an artifact package: its folder inside the coordinator's artifacts directory, or its fingerprint."];
        }
        else
        {
            try
            {
                // A 64-hex-digit fingerprint names the package whose initial parameters hash to it.
                string folder = request.Artifact.Length == 64 && request.Artifact.All(char.IsAsciiHexDigitLower)
                    ? artifacts.Find(request.Artifact)?.Folder ?? throw new IOException($"No artifact package with fingerprint '{request.Artifact}'.")
                    : request.Artifact;
                var path = Path.Combine(options.Value.ArtifactsDirectory, folder);
                if (!ArtifactPaths.IsConfined(options.Value.ArtifactsDirectory, path))
                    throw new IOException($"'{folder}' is not a package inside the artifacts folder.");
                package = ArtifactPackage.Open(path);
            }
            catch (Exception e) when (e is IOException or InvalidDataException)
            {
                errors["artifact"] = [e.Message];
            }
        }
        var privacy = PrivacyRequests.Settings(request.SecureAggregation, request.DifferentialPrivacy, errors);
        if (errors.Count > 0)
            return TypedResults.ValidationProblem(errors);

        var settings = package!.Manifest.SettingsFor(request.Algorithm);
        if (request.LocalSteps is int t)
            settings.LocalSteps = t;
        if (request.MicroBatches is int m)
            settings.MicroBatches = m;
        if (request.LocalLearningRate is double lr)
            settings.LocalLearningRate = lr;
        if (request.CandidateSeeds is int k)
            settings.CandidateSeeds = k;
        if (request.ServerLearningRate is double slr)
            settings.ServerLearningRate = slr;
        ExperimentDescriptor descriptor;
        try
        {
            descriptor = ExperimentDescriptor.Create("exp-" + Guid.NewGuid().ToString("N")[..12], request.Algorithm, settings,
                request.ExperimentSeed ?? (ulong)Random.Shared.NextInt64(), package!.Blocks, package.Manifest.ParametersSha256, request.Rounds, request.Fraction);
            descriptor.MinClients = request.MinClients ?? descriptor.MinClients;
            descriptor.RoundDeadlineSeconds = request.RoundDeadlineSeconds ?? descriptor.RoundDeadlineSeconds;
            descriptor.Privacy = privacy;
            descriptor.Validate();
        }
        catch (ArgumentException e)
        {
            return TypedResults.ValidationProblem(new Dictionary<string, string[]> { ["settings"] = [e.Message] });
        }
        var record = new ExperimentRecord(descriptor.Id, request.Name.Trim(), descriptor.Algorithm, Wire.Serialize(descriptor), ExperimentState.Created,
            descriptor.Rounds, descriptor.ArtifactFingerprint, clock.GetUtcNow(), null);
        log.AddExperiment(record);
        return TypedResults.Created($"/api/experiments/{descriptor.Id}", View(record, descriptor, null, null));
    }

    private static Ok<ExperimentView[]> List(IRoundLog log, IParticipants participants) =>
        TypedResults.Ok(log.ListExperiments().Select(e => View(e, Wire.Deserialize<ExperimentDescriptor>(e.Descriptor), null, participants)).ToArray());

    private static Results<Ok<ExperimentView>, NotFound> Get(string id, IRoundLog log, IExperimentOwnership ownership, IParticipants participants)
    {
        if (log.GetExperiment(id) is not { } e)
            return TypedResults.NotFound();
        var rounds = log.GetRounds(id).Select(RoundView.Of).ToList();
        return TypedResults.Ok(View(e, Wire.Deserialize<ExperimentDescriptor>(e.Descriptor), rounds, participants) with
        {
            Rejections = log.CountRejections(id),
            OpenRound = ExperimentWatchViews.OpenRound(log, id),
            ModelFingerprint = ExperimentWatchViews.ModelFingerprint(log, id),
            Owner = ownership.OwnerOf(id),
        });
    }

    private static Results<NoContent, NotFound, Conflict<string>> Stop(string id, IRoundLog log, TimeProvider clock)
    {
        if (log.GetExperiment(id) is not { } e)
            return TypedResults.NotFound();
        if (e.State is ExperimentState.Completed or ExperimentState.Stopped)
            return TypedResults.Conflict($"Experiment '{id}' is already {e.State.ToString().ToLowerInvariant()}.");
        log.SetExperimentState(id, ExperimentState.Stopped, clock.GetUtcNow());
        return TypedResults.NoContent();
    }

    /// <summary>The MessagePack experiment descriptor a client needs to take part (seeds, blocks, settings).</summary>
    private static Results<FileContentHttpResult, NotFound> Descriptor(string id, IRoundLog log) =>
        log.GetExperiment(id) is { } e ? TypedResults.File(e.Descriptor, MessagePackType) : TypedResults.NotFound();

    /// <summary>Catch-up: the completed global updates after round <paramref name="after"/>, as a MessagePack array of updates.</summary>
    private static Results<FileContentHttpResult, NotFound, ValidationProblem> Updates(string id, int? after, IRoundLog log)
    {
        if (log.GetExperiment(id) is null)
            return TypedResults.NotFound();
        if (after is < 0)
            return TypedResults.ValidationProblem(new Dictionary<string, string[]> { ["after"] = [$"{after} is negative."] });
        var updates = log.GetGlobalUpdates(id, after ?? 0).Select(u => Wire.Deserialize<GlobalUpdate>(u.GlobalUpdate)).ToArray();
        return TypedResults.File(Wire.Serialize(updates), MessagePackType);
    }

    /// <summary>One round in full: every assignment (state, packet digest and size, train loss, reason) and the fingerprints reported.</summary>
    private static Results<Ok<RoundDetailView>, NotFound> RoundDetail(string id, int round, IRoundLog log)
    {
        if (log.GetRound(id, round) is not { } r)
            return TypedResults.NotFound();
        var fingerprints = log.GetFingerprints(id, round);
        return TypedResults.Ok(new RoundDetailView(
            RoundView.Of(r),
            log.GetAssignments(id, round).Select(a => new AssignmentView(a.ClientId, a.State.ToString(), a.PacketSha256, a.PacketBytes, a.ReceivedUtc, a.TrainLoss, a.Reason)).ToList(),
            fingerprints.Select(f => new FingerprintView(f.ClientId, f.Fingerprint, f.ReportedUtc)).ToList(),
            fingerprints.Select(f => f.Fingerprint).Distinct().Count() <= 1));
    }

    private static string Shorten(string? text) => text is { Length: > 80 } ? text[..80] + "..." : text ?? "";

    private static ExperimentView View(ExperimentRecord e, ExperimentDescriptor d, IReadOnlyList<RoundView>? rounds, IParticipants? participants) =>
        new(e.Id, e.Name, e.Algorithm, e.State.ToString(), e.Rounds, d.Fraction, d.MinClients, d.RoundDeadlineSeconds, d.Settings.CandidateSeeds, d.BlockLengths.Length, d.ParameterCount,
            e.ArtifactFingerprint, e.CreatedUtc, rounds, LocalSteps: d.Settings.LocalSteps, LocalLearningRate: d.Settings.LocalLearningRate,
            ServerLearningRate: d.Settings.ServerLearningRate, Settings: d.Settings, ConnectedClients: participants?.Connected(e.Id).Count ?? 0,
            Privacy: PrivacyRequests.View(d, rounds));
}
