using System.Security.Claims;
using System.Text.Json;
using Ferret.Coordinator.Persistence;
using Ferret.Coordinator.Rounds;
using Ferret.Coordinator.ScaleOut;
using Ferret.Coordinator.Security;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;

namespace Ferret.Coordinator.Clients;

public sealed record EnrolmentRequest(string? Label = null, int? ValidMinutes = null);

public sealed record EnrolmentResponse(string Token, DateTimeOffset ExpiresUtc);

public sealed record EnrolRequest(string EnrolmentToken, string Name, JsonElement? Capabilities = null);

public sealed record EnrolResponse(string ClientId, string Token);

public sealed record ClientView(string Id, string Name, DateTimeOffset EnrolledUtc, JsonElement? Capabilities, bool Revoked);

/// <summary>Enrolment and the client registry: admins issue single-use enrolment tokens, devices redeem them.</summary>
public static class ClientEndpoints
{
    public static RouteGroupBuilder MapClients(this IEndpointRouteBuilder app)
    {
        var api = app.MapGroup("/api").WithTags("Clients");
        api.MapPost("/enrolments", IssueEnrolment).RequireAuthorization(Policies.Admin).WithSummary("Issues a single-use enrolment token for one device.");
        api.MapPost("/clients/enrol", Enrol).AllowAnonymous().WithSummary("Redeems an enrolment token: registers the device and returns its bearer token.");
        api.MapGet("/clients", List).RequireAuthorization(Policies.Admin).WithSummary("The client registry.");
        api.MapGet("/clients/me", Me).RequireAuthorization(Policies.Client).WithSummary("The calling client (checks its token).");
        api.MapPost("/clients/{id}/revoke", Revoke).RequireAuthorization(Policies.Admin).WithSummary("Revokes a client: its token stops working and it is never assigned again.");
        return api;
    }

    private static Results<Created<EnrolmentResponse>, ValidationProblem> IssueEnrolment(
        EnrolmentRequest? request, IClientRegistry log, IOptions<CoordinatorOptions> options, TimeProvider clock)
    {
        int minutes = request?.ValidMinutes ?? options.Value.EnrolmentValidityMinutes;
        if (minutes is <= 0 or > 60 * 24 * 365)
            return TypedResults.ValidationProblem(new Dictionary<string, string[]> { ["validMinutes"] = [$"{minutes} is outside 1..525600."] });
        if (request?.Label is { Length: > CallerInput.MaxNameChars } label)
            return TypedResults.ValidationProblem(new Dictionary<string, string[]> { ["label"] = [$"{label.Length} characters; at most {CallerInput.MaxNameChars}."] });
        var now = clock.GetUtcNow();
        var token = Tokens.New("enrol_");
        var expires = now.AddMinutes(minutes);
        log.AddEnrolmentToken(Tokens.Digest(token), request?.Label ?? "", now, expires);
        return TypedResults.Created("/api/clients", new EnrolmentResponse(token, expires));
    }

    private static Results<Ok<EnrolResponse>, ValidationProblem, ProblemHttpResult> Enrol(EnrolRequest? request, IClientRegistry log, TimeProvider clock)
    {
        var errors = new Dictionary<string, string[]>();
        if (string.IsNullOrWhiteSpace(request?.EnrolmentToken))
            errors["enrolmentToken"] = ["Required."];
        if (request?.EnrolmentToken is { Length: > 200 })
            errors["enrolmentToken"] = ["Not an enrolment token."];
        if (string.IsNullOrWhiteSpace(request?.Name) || request.Name.Length > CallerInput.MaxNameChars)
            errors["name"] = [$"Required, at most {CallerInput.MaxNameChars} characters."];
        if (request?.Capabilities is { } caps && caps.GetRawText().Length > CallerInput.MaxCapabilitiesChars)
            errors["capabilities"] = [$"{caps.GetRawText().Length} characters of JSON; at most {CallerInput.MaxCapabilitiesChars}."];
        if (errors.Count > 0)
            return TypedResults.ValidationProblem(errors);
        var now = clock.GetUtcNow();
        var id = "client-" + Guid.NewGuid().ToString("N")[..12];
        var token = Tokens.New("ferret_");
        var capabilities = request!.Capabilities is { } c ? c.GetRawText() : null;
        if (!log.RedeemEnrolmentToken(Tokens.Digest(request.EnrolmentToken), new ClientRecord(id, request.Name.Trim(), now, capabilities, false), Tokens.Digest(token), now))
            return TypedResults.Problem("The enrolment token is unknown, expired or already used.", statusCode: StatusCodes.Status401Unauthorized);
        return TypedResults.Ok(new EnrolResponse(id, token));
    }

    private static Ok<ClientView[]> List(IClientRegistry log) => TypedResults.Ok(log.ListClients().Select(View).ToArray());

    private static Results<Ok<ClientView>, NotFound> Me(ClaimsPrincipal user, IClientRegistry log) =>
        log.GetClient(user.FindFirstValue(ClaimTypes.NameIdentifier)!) is { } c ? TypedResults.Ok(View(c)) : TypedResults.NotFound();

    /// <summary>
    /// Revokes a client: its token stops working, its live connections on this instance are cut (on others,
    /// its next packet is refused and a reconnect fails authentication), its open assignments stop being waited for.
    /// </summary>
    private static Results<NoContent, NotFound> Revoke(string id, IClientRegistry registry, IRoundLog log, ClientConnections connections,
        IExperimentOwnership ownership)
    {
        if (!CallerInput.IsId(id) || !registry.RevokeClient(id))
            return TypedResults.NotFound();
        connections.Abort(id);
        foreach (var experiment in log.ListExperiments().Where(e => e.State is ExperimentState.Created or ExperimentState.Running))
        {
            if (log.GetProgress(experiment.Id).Open is { } open && log.MarkAssignmentFailed(experiment.Id, open.Round, id, "client revoked"))
                ownership.Nudge(experiment.Id);
        }
        return TypedResults.NoContent();
    }

    private static ClientView View(ClientRecord c) =>
        new(c.Id, c.Name, c.EnrolledUtc, c.Capabilities is null ? null : JsonDocument.Parse(c.Capabilities).RootElement.Clone(), c.Revoked);
}
