using System.Security.Claims;
using Ferret.Coordinator.Persistence;
using Ferret.Coordinator.Security;
using Microsoft.AspNetCore.Http.HttpResults;

namespace Ferret.Coordinator.Access;

public sealed record ObserverKeyRequest(string? Label, int? ValidDays);

/// <summary>A freshly minted key: the key itself is shown here once and never again.</summary>
public sealed record AccessKeyCreated(string Id, string Key, string Label, string Role, DateTimeOffset CreatedUtc, DateTimeOffset? ExpiresUtc);

public sealed record AccessKeyView(string Id, string Label, string Role, DateTimeOffset CreatedUtc, DateTimeOffset? ExpiresUtc, bool Revoked);

/// <summary>A one-time sign-in link: <c>role</c> is <c>observer</c> (default) or <c>admin</c>.</summary>
public sealed record SignInLinkRequest(string? Role, string? Label, int? ValidMinutes);

/// <summary>The code, and the dashboard address that signs in with it (relative to the coordinator).</summary>
public sealed record SignInLinkCreated(string Code, string Path, string Role, DateTimeOffset ExpiresUtc);

public sealed record SignInRequest(string? Code);

/// <summary>Who the caller is: <c>admin</c>, <c>observer</c> or <c>client</c>, and the name it goes by.</summary>
public sealed record SessionView(string Role, string Id, string Name);

/// <summary>
/// Dashboard access. An admin mints observer keys (read-only: every observer view and the live events, none of
/// the admin actions), or one-time sign-in links that a browser redeems for its own key: an observer key, or an
/// admin session that expires after <see cref="AdminSessionHours"/> hours. Keys are shown once, stored as SHA-256
/// and revocable; the admin key itself never travels in a link.
/// </summary>
public static class AccessEndpoints
{
    public const string ObserverKeyPrefix = "observe_";
    public const string AdminSessionPrefix = "session_";
    public const string SignInCodePrefix = "signin_";
    public const int AdminSessionHours = 24;
    public const int DefaultLinkMinutes = 60;

    public static RouteGroupBuilder MapAccess(this IEndpointRouteBuilder app)
    {
        var api = app.MapGroup("/api").WithTags("Access");
        api.MapPost("/observer-keys", MintObserverKey).RequireAuthorization(Policies.Admin).WithSummary("Mints an observer key: read-only access for watching experiments.");
        api.MapGet("/access-keys", List).RequireAuthorization(Policies.Admin).WithSummary("The observer keys and sessions issued, without their secrets.");
        api.MapPost("/access-keys/{id}/revoke", Revoke).RequireAuthorization(Policies.Admin).WithSummary("Revokes an observer key or session.");
        api.MapPost("/sign-in-links", MintLink).RequireAuthorization(Policies.Admin).WithSummary("Mints a one-time sign-in link for the dashboard (observer or admin session).");
        api.MapPost("/sign-in", SignIn).AllowAnonymous().WithSummary("Redeems a one-time sign-in code for a session token.");
        api.MapGet("/session", Session).RequireAuthorization(Policies.Observer).WithSummary("The calling session: its role and expiry.");
        return api;
    }

    /// <summary>Mints a one-time sign-in link (used by <c>ferret demo</c> and the admin API).</summary>
    public static SignInLinkCreated MintSignInLink(IClientRegistry log, TimeProvider clock, string role, string label, int validMinutes)
    {
        ArgumentNullException.ThrowIfNull(log);
        ArgumentNullException.ThrowIfNull(clock);
        var now = clock.GetUtcNow();
        var code = Tokens.New(SignInCodePrefix);
        var expires = now.AddMinutes(validMinutes);
        log.AddSignInCode(Tokens.Digest(code), role, label, now, expires);
        return new SignInLinkCreated(code, "/#signin=" + code, role, expires);
    }

    private static Results<Created<AccessKeyCreated>, ValidationProblem> MintObserverKey(ObserverKeyRequest? request, IClientRegistry log, TimeProvider clock)
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
        var key = Tokens.New(ObserverKeyPrefix);
        var record = new AccessKeyRecord(NewId(), label.Length == 0 ? "observer" : label, BearerAuthenticationHandler.ObserverRole, now,
            request?.ValidDays is int d ? now.AddDays(d) : null, false);
        log.AddAccessKey(record, Tokens.Digest(key));
        return TypedResults.Created("/api/access-keys", Created(record, key));
    }

    private static Results<Created<SignInLinkCreated>, ValidationProblem> MintLink(SignInLinkRequest? request, IClientRegistry log, TimeProvider clock)
    {
        var errors = new Dictionary<string, string[]>();
        string role = request?.Role?.Trim().ToLowerInvariant() ?? BearerAuthenticationHandler.ObserverRole;
        if (role is not (BearerAuthenticationHandler.ObserverRole or BearerAuthenticationHandler.AdminRole))
            errors["role"] = [$"'{request?.Role}' is not observer or admin."];
        string label = request?.Label?.Trim() ?? "";
        if (label.Length > 200)
            errors["label"] = [$"{label.Length} characters; at most 200."];
        int minutes = request?.ValidMinutes ?? DefaultLinkMinutes;
        if (minutes is < 1 or > 60 * 24 * 7)
            errors["validMinutes"] = [$"{minutes} is outside 1..10080."];
        if (errors.Count > 0)
            return TypedResults.ValidationProblem(errors);
        var link = MintSignInLink(log, clock, role, label.Length == 0 ? role + " link" : label, minutes);
        return TypedResults.Created(link.Path, link);
    }

    private static Results<Ok<AccessKeyCreated>, ProblemHttpResult> SignIn(SignInRequest? request, IClientRegistry log, TimeProvider clock)
    {
        if (string.IsNullOrWhiteSpace(request?.Code))
            return TypedResults.Problem("A sign-in code is required.", statusCode: StatusCodes.Status400BadRequest);
        var now = clock.GetUtcNow();
        string? key = null;
        var record = log.RedeemSignInCode(Tokens.Digest(request.Code.Trim()), now, (role, label) =>
        {
            bool admin = role == BearerAuthenticationHandler.AdminRole;
            key = Tokens.New(admin ? AdminSessionPrefix : ObserverKeyPrefix);
            return (new AccessKeyRecord(NewId(), label, role, now, admin ? now.AddHours(AdminSessionHours) : null, false), Tokens.Digest(key));
        });
        return record is null || key is null
            ? TypedResults.Problem("This sign-in link is unknown, expired or already used.", statusCode: StatusCodes.Status401Unauthorized)
            : TypedResults.Ok(Created(record, key));
    }

    private static Ok<AccessKeyView[]> List(IClientRegistry log) =>
        TypedResults.Ok(log.ListAccessKeys().Select(k => new AccessKeyView(k.Id, k.Label, k.Role, k.CreatedUtc, k.ExpiresUtc, k.Revoked)).ToArray());

    private static Results<NoContent, NotFound> Revoke(string id, IClientRegistry log) =>
        log.RevokeAccessKey(id) ? TypedResults.NoContent() : TypedResults.NotFound();

    private static Ok<SessionView> Session(ClaimsPrincipal user) => TypedResults.Ok(new SessionView(
        user.FindFirstValue(ClaimTypes.Role) ?? "", user.FindFirstValue(ClaimTypes.NameIdentifier) ?? "", user.FindFirstValue(ClaimTypes.Name) ?? ""));

    private static AccessKeyCreated Created(AccessKeyRecord r, string key) => new(r.Id, key, r.Label, r.Role, r.CreatedUtc, r.ExpiresUtc);

    private static string NewId() => "key-" + Guid.NewGuid().ToString("N")[..12];
}
