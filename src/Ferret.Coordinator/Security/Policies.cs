using Microsoft.AspNetCore.Authorization;

namespace Ferret.Coordinator.Security;

/// <summary>Who may call what: admins manage, enrolled clients train, admins, clients and observer keys may watch.</summary>
public static class Policies
{
    public const string Admin = "admin";
    public const string Client = "client";
    public const string Observer = "observer";

    public static void Add(AuthorizationOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.AddPolicy(Admin, p => p.RequireRole(BearerAuthenticationHandler.AdminRole));
        options.AddPolicy(Client, p => p.RequireRole(BearerAuthenticationHandler.ClientRole));
        options.AddPolicy(Observer, p => p.RequireRole(BearerAuthenticationHandler.AdminRole, BearerAuthenticationHandler.ClientRole, BearerAuthenticationHandler.ObserverRole));
    }
}
