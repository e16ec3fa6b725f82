using System.Security.Claims;
using System.Text.Encodings.Web;
using Ferret.Coordinator.Persistence;
using Microsoft.AspNetCore.Authentication;
using Microsoft.Extensions.Options;

namespace Ferret.Coordinator.Security;

/// <summary>
/// Authenticates every API call and hub connection by bearer token: the admin key configured on the
/// coordinator, an edge client's token issued at enrolment, or a dashboard access key an admin minted (a
/// read-only observer key, or an admin session from a one-time sign-in link), the last two looked up by
/// their SHA-256. SignalR's
/// WebSocket transport cannot set headers, so hub requests may carry the token as <c>access_token</c>.
/// </summary>
public sealed class BearerAuthenticationHandler(
    IOptionsMonitor<AuthenticationSchemeOptions> options,
    ILoggerFactory logger,
    UrlEncoder encoder,
    IClientRegistry log,
    IOptions<CoordinatorOptions> coordinator,
    TimeProvider clock)
    : AuthenticationHandler<AuthenticationSchemeOptions>(options, logger, encoder)
{
    public const string SchemeName = "FerretBearer";
    public const string AdminRole = "admin";
    public const string ClientRole = "client";
    public const string ObserverRole = "observer";

    protected override Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        string? token = null;
        var header = Request.Headers.Authorization.ToString();
        if (header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
            token = header["Bearer ".Length..].Trim();
        else if (Request.Path.StartsWithSegments("/hubs", StringComparison.Ordinal) && Request.Query.TryGetValue("access_token", out var q))
            token = q.ToString();
        if (string.IsNullOrEmpty(token))
            return Task.FromResult(AuthenticateResult.NoResult());

        var adminKey = coordinator.Value.AdminKey;
        if (!string.IsNullOrEmpty(adminKey) && Tokens.SecretEquals(token, adminKey))
            return Task.FromResult(Success("admin", "admin", AdminRole));

        var digest = Tokens.Digest(token);
        var client = log.FindClientByToken(digest);
        if (client is null)
            return Task.FromResult(Observer(digest));
        if (client.Revoked)
            return Task.FromResult(AuthenticateResult.Fail($"Client '{client.Id}' has been revoked."));
        return Task.FromResult(Success(client.Id, client.Name, ClientRole));
    }

    private AuthenticateResult Observer(string digest)
    {
        if (log.FindAccessKey(digest) is not { } key)
            return AuthenticateResult.Fail("Unknown bearer token.");
        if (key.Revoked)
            return AuthenticateResult.Fail($"Access key '{key.Id}' has been revoked.");
        if (key.ExpiresUtc is { } expires && expires <= clock.GetUtcNow())
            return AuthenticateResult.Fail($"Access key '{key.Id}' expired at {expires:O}.");
        return Success(key.Id, key.Label, key.Role == AdminRole ? AdminRole : ObserverRole);
    }

    private static AuthenticateResult Success(string id, string name, string role)
    {
        var identity = new ClaimsIdentity(
            [new Claim(ClaimTypes.NameIdentifier, id), new Claim(ClaimTypes.Name, name), new Claim(ClaimTypes.Role, role)], SchemeName);
        return AuthenticateResult.Success(new AuthenticationTicket(new ClaimsPrincipal(identity), SchemeName));
    }
}
