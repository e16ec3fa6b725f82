using System.Text.Json;
using Ferret.Coordinator.Persistence;
using Ferret.Coordinator.Rounds;
using Ferret.Coordinator.Security;
using Ferret.Core.Algorithms;
using Microsoft.AspNetCore.Http.HttpResults;

namespace Ferret.Coordinator.Experiments;

/// <summary>A client's part in the open round: <c>Assigned</c> (waiting), <c>Received</c>, <c>Failed</c> (with the reason).</summary>
public sealed record OpenAssignmentView(string ClientId, string State, string? Reason);

/// <summary>The round in progress: packets received of assigned, failures, and the deadline.</summary>
public sealed record OpenRoundView(int Round, DateTimeOffset OpenedUtc, DateTimeOffset DeadlineUtc, int Assigned, int Received, int Failed,
    IReadOnlyList<OpenAssignmentView> Clients);

/// <summary>The model fingerprint participants reported for the latest round they reported on; agreed when every report is equal.</summary>
public sealed record ModelFingerprintView(int Round, string Fingerprint, int Reports, bool Agree);

/// <summary>A client of an experiment as an observer sees it.</summary>
public sealed record ExperimentClientView(
    string Id, string Name, string? Device, bool Online, bool Revoked, int? LastRound, string? LastState, int Delivered, int Failures,
    int? LastFailureRound, string? LastFailureState, string? LastFailureReason, int? FingerprintRound, string? Fingerprint, bool? FingerprintAgrees,
    long Rejections);

public sealed record RejectionView(long Id, int? Round, string? ClientId, string Reason, long Bytes, DateTimeOffset AtUtc);

/// <summary>An algorithm and the reference values its unset settings take (what a create form starts from).</summary>
public sealed record AlgorithmDefaultsView(
    string Name, int LocalSteps, int MicroBatches, double LocalLearningRate, int CandidateSeeds, double ServerLearningRate, int MinClients, int RoundDeadlineSeconds);

/// <summary>
/// What a dashboard reads to fill itself before the live events take over: the open round, the clients
/// (online or not, last round, failures with their reason, fingerprint agreement), the rejection log, and the
/// algorithms' defaults for the create form.
/// </summary>
public static class ExperimentWatchViews
{
    public const int MaxRejections = 500;

    public static void MapWatchViews(this RouteGroupBuilder experiments, IEndpointRouteBuilder app)
    {
        ArgumentNullException.ThrowIfNull(experiments);
        experiments.MapGet("/{id}/clients", Clients).RequireAuthorization(Policies.Observer).WithSummary("The experiment's clients: connected now, their assignments and reports.");
        experiments.MapGet("/{id}/rejections", Rejections).RequireAuthorization(Policies.Observer).WithSummary("The packets and messages refused at the door, newest first.");
        app.MapGet("/api/algorithms", Algorithms).WithTags("Experiments").RequireAuthorization(Policies.Observer).WithSummary("The algorithms and their reference settings.");
    }

    /// <summary>The open round of an experiment, or null between rounds.</summary>
    public static OpenRoundView? OpenRound(IRoundLog log, string experimentId)
    {
        ArgumentNullException.ThrowIfNull(log);
        if (log.GetProgress(experimentId).Open is not { } open)
            return null;
        var assignments = log.GetAssignments(experimentId, open.Round);
        return new OpenRoundView(open.Round, open.OpenedUtc, open.DeadlineUtc, assignments.Count,
            assignments.Count(a => a.State == AssignmentState.Received), assignments.Count(a => a.State == AssignmentState.Failed),
            [.. assignments.Select(a => new OpenAssignmentView(a.ClientId, a.State.ToString(), a.Reason))]);
    }

    /// <summary>The latest reported model fingerprint and whether every report of that round agrees.</summary>
    public static ModelFingerprintView? ModelFingerprint(IRoundLog log, string experimentId)
    {
        ArgumentNullException.ThrowIfNull(log);
        var reports = log.GetLatestFingerprints(experimentId);
        if (reports.Count == 0)
            return null;
        var majority = reports.GroupBy(f => f.Fingerprint).OrderByDescending(g => g.Count()).ThenBy(g => g.Key, StringComparer.Ordinal).First().Key;
        return new ModelFingerprintView(reports[0].Round, majority, reports.Count, reports.All(f => f.Fingerprint == majority));
    }

    private static Results<Ok<ExperimentClientView[]>, NotFound> Clients(string id, IRoundLog log, IParticipants participants)
    {
        if (log.GetExperiment(id) is null)
            return TypedResults.NotFound();
        var connected = participants.Connected(id);
        var records = log.GetExperimentClients(id, connected);
        // A client agrees when its latest fingerprint is the one most participants reported for that round.
        var majorities = records.Where(r => r.FingerprintRound is not null).Select(r => r.FingerprintRound!.Value).Distinct()
            .ToDictionary(r => r, r => Majority(log.GetFingerprints(id, r)));
        var online = connected.ToHashSet(StringComparer.Ordinal);
        return TypedResults.Ok(records.Select(r => new ExperimentClientView(
            r.Id, r.Name, Device(r.Capabilities), online.Contains(r.Id), r.Revoked, r.LastRound, r.LastState?.ToString(), r.Delivered, r.Failures,
            r.LastFailureRound, r.LastFailureState?.ToString(),
            r.LastFailureState == AssignmentState.Missed ? r.LastFailureReason ?? "no packet before the deadline" : r.LastFailureReason,
            r.FingerprintRound, r.Fingerprint, r.FingerprintRound is int fr ? majorities[fr] == r.Fingerprint : null, r.Rejections)).ToArray());
    }

    private static Results<Ok<RejectionView[]>, NotFound, ValidationProblem> Rejections(string id, int? limit, IRoundLog log)
    {
        if (log.GetExperiment(id) is null)
            return TypedResults.NotFound();
        int n = limit ?? 100;
        if (n is < 1 or > MaxRejections)
            return TypedResults.ValidationProblem(new Dictionary<string, string[]> { ["limit"] = [$"{n} is outside 1..{MaxRejections}."] });
        return TypedResults.Ok(log.GetRejections(id, n).Select(r => new RejectionView(r.Id, r.Round, r.ClientId, r.Reason, r.Bytes, r.AtUtc)).ToArray());
    }

    private static Ok<AlgorithmDefaultsView[]> Algorithms()
    {
        var descriptor = new ExperimentDescriptor();
        return TypedResults.Ok(FederatedAlgorithms.Names.Select(name =>
        {
            var s = FederatedAlgorithms.ReferenceSettings(name);
            return new AlgorithmDefaultsView(name, s.LocalSteps, s.MicroBatches, s.LocalLearningRate, s.CandidateSeeds, s.ServerLearningRate,
                descriptor.MinClients, descriptor.RoundDeadlineSeconds);
        }).ToArray());
    }

    private static string? Majority(IReadOnlyList<FingerprintRecord> reports) =>
        reports.GroupBy(f => f.Fingerprint).OrderByDescending(g => g.Count()).ThenBy(g => g.Key, StringComparer.Ordinal).Select(g => g.Key).FirstOrDefault();

    /// <summary>The device a client said it trains on (its capabilities' <c>device</c>), when it said.</summary>
    private static string? Device(string? capabilities)
    {
        if (capabilities is null)
            return null;
        try
        {
            using var doc = JsonDocument.Parse(capabilities);
            return doc.RootElement.ValueKind == JsonValueKind.Object && doc.RootElement.TryGetProperty("device", out var d) && d.ValueKind == JsonValueKind.String
                ? d.GetString()
                : null;
        }
        catch (JsonException)
        {
            return null;
        }
    }
}
