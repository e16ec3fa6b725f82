using System.Security.Claims;
using Ferret.Coordinator.Persistence;
using Ferret.Coordinator.Security;
using Microsoft.AspNetCore.Http.HttpResults;

namespace Ferret.Coordinator.Observers;

public sealed record ObserverKeyRequest(string? Label, int? ValidDays);

/// <summary>A freshly minted observer key: the key itself is shown here once and never again.</summary>
public sealed record ObserverKeyCreated(string Id, string Key, string Label, DateTimeOffset CreatedUtc, DateTimeOffset? ExpiresUtc);

public sealed record ObserverKeyView(string Id, string Label, DateTimeOffset CreatedUtc, DateTimeOffset? ExpiresUtc, bool Revoked);

/// <summary>Who the caller is: <c>admin</c>, <c>observer</c> or <c>client</c>, and the name it goes by.</summary>
public sealed record SessionView(string Role, string Id, string Name);

/// <summary>
/// Read-only access for dashboards: an admin mints observer keys (shown once, stored as SHA-256, revocable,
/// optionally expiring) that open every observer view and the live events, and none of the admin actions.
/// </summary>
public static class ObserverEndpoints
{
    public const string KeyPrefix = "observe_";

    public static RouteGroupBuilder MapObservers(this IEndpointRouteBuilder app)
    {
        var api = app.MapGroup("/api").WithTags("Observers");
        api.MapPost("/observer-keys", Mint).RequireAuthorization(Policies.Admin);
        api.MapGet("/observer-keys", List).RequireAuthorization(Policies.Admin);
        api.MapPost("/observer-keys/{id}/revoke", Revoke).RequireAuthorization(Policies.Admin);
        api.MapGet("/session", Session).RequireAuthorization(Policies.Observer);
        return api;
    }

    private static Results<Created<ObserverKeyCreated>, ValidationProblem> Mint(ObserverKeyRequest? request, RoundLog log, TimeProvider clock)
    {
        var errors = new Dictionary<string, string[]>();
        string label = request?.Label?.Trim() ?? "";
        if (label.Length > 200)
            errors["label"] = [$"{label.Length} characters; at most 200."];
        if (request?.ValidDays is int days && days is < 1 or > 3650)
            errors["validDays"] = [$"{days} is outside 1..3650."];
        if (errors.Count > 0)
            return TypedResults.ValidationProblem(errors);
        var now = clock.GetUtcNow();
        var key = Tokens.New(KeyPrefix);
        var record = new ObserverKeyRecord("observer-" + Guid.NewGuid().ToString("N")[..12], label.Length == 0 ? "observer" : label, now,
            request?.ValidDays is int d ? now.AddDays(d) : null, false);
        log.AddObserverKey(record, Tokens.Digest(key));
        return TypedResults.Created("/api/observer-keys", new ObserverKeyCreated(record.Id, key, record.Label, record.CreatedUtc, record.ExpiresUtc));
    }

    private static Ok<ObserverKeyView[]> List(RoundLog log) =>
        TypedResults.Ok(log.ListObserverKeys().Select(k => new ObserverKeyView(k.Id, k.Label, k.CreatedUtc, k.ExpiresUtc, k.Revoked)).ToArray());

    private static Results<NoContent, NotFound> Revoke(string id, RoundLog log) =>
        log.RevokeObserverKey(id) ? TypedResults.NoContent() : TypedResults.NotFound();

    private static Ok<SessionView> Session(ClaimsPrincipal user) => TypedResults.Ok(new SessionView(
        user.FindFirstValue(ClaimTypes.Role) ?? "", user.FindFirstValue(ClaimTypes.NameIdentifier) ?? "", user.FindFirstValue(ClaimTypes.Name) ?? ""));
}
