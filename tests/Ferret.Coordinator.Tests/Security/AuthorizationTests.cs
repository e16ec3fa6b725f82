using System.Net;
using System.Reflection;
using System.Text;
using System.Text.RegularExpressions;
using Ferret.Coordinator.Rounds;
using Ferret.Coordinator.Security;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Routing;
using Microsoft.AspNetCore.SignalR;
using Microsoft.AspNetCore.SignalR.Client;
using Microsoft.Extensions.DependencyInjection;

namespace Ferret.Coordinator.Tests.Security;

/// <summary>
/// Who may call what, read from the coordinator's own route table and hub: every endpoint and hub method
/// carries an explicit policy, each is in the README's security table with the same caller, and each
/// answers every kind of credential (none, malformed, a client token, the admin key) as that table says.
/// A new endpoint without a policy, or missing from the table, fails here.
/// </summary>
public sealed partial class AuthorizationTests : IDisposable
{
    // Hundreds of deliberately failed authentications from one address: lift the lockout for this class.
    private readonly CoordinatorFactory _factory = new(runRounds: false, settings: new Dictionary<string, string> { ["Ferret:FailedAuthenticationsPerMinute"] = "100000" });

    public void Dispose() => _factory.Dispose();

    /// <summary>Who a policy lets in, as the README spells it.</summary>
    private static string Who(string? policy) => policy switch
    {
        null => "anyone",
        Policies.Admin => "admin",
        Policies.Client => "client",
        Policies.Observer => "admin, client, observer",
        _ => throw new InvalidOperationException($"unknown policy '{policy}'"),
    };

    /// <summary>Every REST endpoint as "METHOD /pattern" with its caller, from the app's route table; fails on one without an explicit policy.</summary>
    private Dictionary<string, string> RestEndpoints()
    {
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        var missing = new List<string>();
        foreach (var endpoint in _factory.Services.GetRequiredService<EndpointDataSource>().Endpoints.OfType<RouteEndpoint>())
        {
            string pattern = "/" + endpoint.RoutePattern.RawText!.Trim('/');
            if (pattern.StartsWith(RoundsHub.Path, StringComparison.Ordinal))
                continue; // the hub's transport endpoints: its methods are checked one by one below
            if (pattern == "/")
                continue; // the dashboard page (static files, or a public note when built without it)
            var methods = endpoint.Metadata.GetMetadata<HttpMethodMetadata>()?.HttpMethods ?? ["GET"];
            bool anonymous = endpoint.Metadata.GetMetadata<IAllowAnonymous>() is not null;
            var policies = endpoint.Metadata.GetOrderedMetadata<IAuthorizeData>().Select(a => a.Policy).Where(p => p is not null).Distinct().ToList();
            foreach (var method in methods)
            {
                string key = $"{method} {Regex.Replace(pattern, @":\w+}", "}")}";
                if (anonymous == (policies.Count > 0) || policies.Count > 1)
                    missing.Add($"{key}: {(anonymous ? "anonymous" : "")} {string.Join(',', policies)}");
                else
                    result[key] = anonymous ? "anyone" : Who(policies[0]);
            }
        }
        Assert.True(missing.Count == 0, "endpoints without exactly one explicit policy (RequireAuthorization(Policies.X) or AllowAnonymous): " + string.Join("; ", missing));
        return result;
    }

    /// <summary>Every hub method with its caller, from the [Authorize] on each method.</summary>
    private static Dictionary<string, string> HubMethods()
    {
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var m in typeof(RoundsHub).GetMethods(BindingFlags.Public | BindingFlags.Instance | BindingFlags.DeclaredOnly).Where(m => !m.IsSpecialName && !m.Name.StartsWith("On", StringComparison.Ordinal)))
        {
            var policy = m.GetCustomAttribute<AuthorizeAttribute>()?.Policy;
            Assert.True(policy is not null, $"hub method {m.Name} has no [Authorize(Policy = ...)]");
            result["hub " + m.Name] = Who(policy);
        }
        return result;
    }

    /// <summary>The README's table under "Who may call what": "`METHOD /path`" or "`hub Method`", then the caller.</summary>
    private static Dictionary<string, string> ReadmeTable()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Ferret.sln")))
            dir = dir.Parent;
        Assert.NotNull(dir);
        var text = File.ReadAllText(Path.Combine(dir.FullName, "README.md"));
        int start = text.IndexOf("### Who may call what", StringComparison.Ordinal);
        Assert.True(start >= 0, "README.md has no '### Who may call what' table");
        var table = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (Match m in ReadmeRow().Matches(text[start..]))
            table[m.Groups[1].Value] = m.Groups[2].Value.Trim();
        return table;
    }

    [GeneratedRegex(@"^\| `((?:GET|POST|PUT|PATCH|DELETE|hub) [^`]+)` \| ([a-z, ]+) \|", RegexOptions.Multiline)]
    private static partial Regex ReadmeRow();

    [Fact]
    public void Every_endpoint_and_hub_method_has_an_explicit_policy_and_is_in_the_readme_table_with_the_same_caller()
    {
        var actual = RestEndpoints().Concat(HubMethods()).ToDictionary(kv => kv.Key, kv => kv.Value, StringComparer.Ordinal);
        var documented = ReadmeTable();
        var undocumented = actual.Where(kv => !documented.TryGetValue(kv.Key, out var who) || who != kv.Value).Select(kv => $"{kv.Key} -> {kv.Value}").ToList();
        Assert.True(undocumented.Count == 0, "not in README's table (or with another caller): " + string.Join("; ", undocumented));
        var stale = documented.Keys.Except(actual.Keys).ToList();
        Assert.True(stale.Count == 0, "in README's table but not served: " + string.Join("; ", stale));
    }

    [Fact]
    public async Task Every_endpoint_answers_every_kind_of_credential_as_its_policy_says()
    {
        var client = await _factory.EnrolAsync("matrix");
        string observer = await ObserverKeyAsync();
        var credentials = new (string Name, string? Token)[]
        {
            ("none", null), ("malformed", "ferret_not-a-token"), ("client", client.Token), ("observer", observer), ("admin", CoordinatorFactory.AdminKey),
        };
        var failures = new List<string>();
        int calls = 0;
        foreach (var (key, who) in RestEndpoints())
        {
            var parts = key.Split(' ', 2);
            string path = parts[1].Replace("{id}", "exp-none", StringComparison.Ordinal).Replace("{round}", "1", StringComparison.Ordinal)
                .Replace("{fingerprint}", new string('0', 64), StringComparison.Ordinal).Replace("{name}", "manifest.json", StringComparison.Ordinal);
            foreach (var (name, token) in credentials)
            {
                var http = token is null ? _factory.CreateClient() : _factory.WithToken(token);
                using var request = new HttpRequestMessage(new HttpMethod(parts[0]), path);
                if (parts[0] != "GET")
                    request.Content = new StringContent("{}", Encoding.UTF8, "application/json");
                var status = (await http.SendAsync(request)).StatusCode;
                calls++;
                bool allowed = who == "anyone" || who.Split(", ").Contains(name);
                // Allowed: anything but 401/403 (404, 400 for the placeholders are fine). Refused: 401 without a valid credential, 403 with the wrong one.
                HttpStatusCode? expected = allowed ? null : token is null || name == "malformed" ? HttpStatusCode.Unauthorized : HttpStatusCode.Forbidden;
                if (allowed ? status is HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden : status != expected)
                    failures.Add($"{key} as {name}: {(int)status}, expected {(allowed ? "not 401/403" : ((int)expected!).ToString())}");
            }
        }
        Assert.True(failures.Count == 0, $"{failures.Count} of {calls} calls answered against the policy: " + string.Join("; ", failures));
        Assert.True(calls >= 5 * 27, $"only {calls} calls were made; the route table shrank?");
    }

    private async Task<string> ObserverKeyAsync()
    {
        var minted = await _factory.Admin().PostAsync("/api/observer-keys", new StringContent("{}", Encoding.UTF8, "application/json"));
        minted.EnsureSuccessStatusCode();
        return System.Text.Json.JsonDocument.Parse(await minted.Content.ReadAsStringAsync()).RootElement.GetProperty("key").GetString()!;
    }

    [Fact]
    public async Task Every_hub_method_refuses_the_wrong_caller()
    {
        var client = await _factory.EnrolAsync("hub-matrix");
        await using var asClient = _factory.ConnectHub(client.Token);
        await using var asAdmin = _factory.ConnectHub(CoordinatorFactory.AdminKey);
        await using var asObserver = _factory.ConnectHub(await ObserverKeyAsync());
        await asClient.StartAsync();
        await asAdmin.StartAsync();
        await asObserver.StartAsync();
        await using var anonymous = _factory.ConnectHub(null);
        await Assert.ThrowsAnyAsync<HttpRequestException>(() => anonymous.StartAsync());
        await using var forged = _factory.ConnectHub("ferret_forged");
        await Assert.ThrowsAnyAsync<HttpRequestException>(() => forged.StartAsync());
        var arguments = new Dictionary<string, object?[]>
        {
            ["Subscribe"] = ["exp-none"],
            ["Join"] = ["exp-none", null],
            ["SubmitUpdate"] = ["exp-none", 1, new byte[] { 1 }],
            ["ReportFailure"] = ["exp-none", 1, "x"],
            ["ReportFingerprint"] = ["exp-none", 1, new string('a', 64)],
        };
        foreach (var (key, who) in HubMethods())
        {
            string method = key["hub ".Length..];
            if (!arguments.TryGetValue(method, out var args))
                continue; // streaming methods take a stream; their policy is checked by attribute above
            foreach (var (name, hub) in new[] { ("client", asClient), ("admin", asAdmin), ("observer", asObserver) })
            {
                var error = await Record.ExceptionAsync(() => hub.InvokeCoreAsync(method, typeof(object), args));
                bool refused = error is HubException h && h.Message.Contains("unauthorized", StringComparison.Ordinal);
                Assert.True(refused != who.Split(", ").Contains(name), $"{method} as {name}: {(refused ? "refused" : "let through")}, but the policy says {who}");
            }
        }
    }
}
