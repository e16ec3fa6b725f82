using System.Net;
using System.Net.Http.Json;
using Ferret.Coordinator.Access;
using Microsoft.AspNetCore.SignalR;
using Microsoft.AspNetCore.SignalR.Client;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;

namespace Ferret.Coordinator.Tests.Api;

/// <summary>Dashboard access: observer keys watch and never act; one-time sign-in links work once; keys expire and are revoked.</summary>
public sealed class DashboardAccessTests : IDisposable
{
    private readonly CoordinatorFactory _factory = new(runRounds: false);

    public void Dispose() => _factory.Dispose();

    private async Task<AccessKeyCreated> MintObserverKeyAsync(int? validDays = null)
    {
        var response = await _factory.Admin().PostAsJsonAsync("/api/observer-keys", new { label = "wall screen", validDays });
        Assert.True(response.StatusCode == HttpStatusCode.Created, await response.Content.ReadAsStringAsync());
        return (await response.Content.ReadFromJsonAsync<AccessKeyCreated>())!;
    }

    [Fact]
    public async Task An_observer_key_watches_every_view_and_the_hub_but_every_admin_action_is_refused()
    {
        var key = await MintObserverKeyAsync();
        Assert.StartsWith(AccessEndpoints.ObserverKeyPrefix, key.Key);
        var observer = _factory.WithToken(key.Key);
        var session = (await observer.GetFromJsonAsync<SessionView>("/api/session"))!;
        Assert.Equal(new SessionView("observer", key.Id, "wall screen"), session);
        foreach (var path in new[] { "/api/experiments", "/api/artifacts", "/api/algorithms" })
            Assert.True((await observer.GetAsync(path)).IsSuccessStatusCode, $"an observer reads {path}");
        foreach (var (method, path) in new[] { ("POST", "/api/experiments"), ("POST", "/api/enrolments"), ("GET", "/api/clients"), ("POST", "/api/observer-keys"), ("POST", "/api/sign-in-links"), ("GET", "/api/access-keys") })
        {
            using var request = new HttpRequestMessage(new HttpMethod(method), path) { Content = JsonContent.Create(new { }) };
            Assert.True((await observer.SendAsync(request)).StatusCode == HttpStatusCode.Forbidden, $"{method} {path} is refused to an observer key");
        }

        await using var hub = _factory.ConnectHub(key.Key);
        await hub.StartAsync();
        var join = await Assert.ThrowsAsync<HubException>(() => hub.InvokeAsync<object>("Join", "exp-x", (string?)null));
        Assert.Contains("unauthorized", join.Message); // the hub method's own policy: clients only

        Assert.Equal(HttpStatusCode.NoContent, (await _factory.Admin().PostAsync($"/api/access-keys/{key.Id}/revoke", null)).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await observer.GetAsync("/api/experiments")).StatusCode);
        var listed = Assert.Single((await _factory.Admin().GetFromJsonAsync<AccessKeyView[]>("/api/access-keys"))!);
        Assert.True(listed.Revoked, "the list shows the key revoked");
    }

    [Fact]
    public async Task A_sign_in_link_works_once_and_an_admin_link_buys_an_admin_session_that_expires()
    {
        var admin = _factory.Admin();
        var link = (await (await admin.PostAsJsonAsync("/api/sign-in-links", new { role = "admin", label = "demo" })).Content.ReadFromJsonAsync<SignInLinkCreated>())!;
        Assert.Equal("/#signin=" + link.Code, link.Path);
        var anonymous = _factory.CreateClient();
        var redeemed = await anonymous.PostAsJsonAsync("/api/sign-in", new { code = link.Code });
        Assert.Equal(HttpStatusCode.OK, redeemed.StatusCode);
        var session = (await redeemed.Content.ReadFromJsonAsync<AccessKeyCreated>())!;
        Assert.StartsWith(AccessEndpoints.AdminSessionPrefix, session.Key);
        Assert.Equal("admin", session.Role);
        Assert.NotNull(session.ExpiresUtc);
        Assert.InRange((session.ExpiresUtc!.Value - session.CreatedUtc).TotalHours, AccessEndpoints.AdminSessionHours - 0.01, AccessEndpoints.AdminSessionHours + 0.01);
        // The session acts as the admin...
        Assert.Equal(HttpStatusCode.Created, (await _factory.WithToken(session.Key).PostAsJsonAsync("/api/enrolments", new { })).StatusCode);
        // ...and the link is spent.
        Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.PostAsJsonAsync("/api/sign-in", new { code = link.Code })).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.PostAsJsonAsync("/api/sign-in", new { code = "signin_made-up" })).StatusCode);

        var observerLink = (await (await admin.PostAsJsonAsync("/api/sign-in-links", new { })).Content.ReadFromJsonAsync<SignInLinkCreated>())!;
        var observer = (await (await anonymous.PostAsJsonAsync("/api/sign-in", new { code = observerLink.Code })).Content.ReadFromJsonAsync<AccessKeyCreated>())!;
        Assert.Equal("observer", observer.Role);
        Assert.Equal(HttpStatusCode.Forbidden, (await _factory.WithToken(observer.Key).PostAsJsonAsync("/api/enrolments", new { })).StatusCode);

        // Bad requests name the field; nobody but the admin mints links.
        var badRole = await admin.PostAsJsonAsync("/api/sign-in-links", new { role = "root" });
        Assert.Equal(HttpStatusCode.BadRequest, badRole.StatusCode);
        Assert.Contains("role", await badRole.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.PostAsJsonAsync("/api/sign-in-links", new { })).StatusCode);
    }

    [Fact]
    public async Task Keys_and_links_past_their_time_are_refused()
    {
        var key = await MintObserverKeyAsync(validDays: 1);
        var link = (await (await _factory.Admin().PostAsJsonAsync("/api/sign-in-links", new { validMinutes = 30 })).Content.ReadFromJsonAsync<SignInLinkCreated>())!;
        var clock = new ShiftedClock();
        using var later = _factory.WithWebHostBuilder(b => b.ConfigureTestServices(s => s.AddSingleton<TimeProvider>(clock)));
        var observer = later.CreateClient();
        observer.DefaultRequestHeaders.Authorization = new("Bearer", key.Key);
        Assert.Equal(HttpStatusCode.OK, (await observer.GetAsync("/api/session")).StatusCode);

        clock.Shift = TimeSpan.FromDays(2);
        Assert.Equal(HttpStatusCode.Unauthorized, (await observer.GetAsync("/api/session")).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await later.CreateClient().PostAsJsonAsync("/api/sign-in", new { code = link.Code })).StatusCode);
    }

    [Fact]
    public async Task The_dashboard_is_served_at_the_root_with_a_strict_content_security_policy()
    {
        var anonymous = _factory.CreateClient();
        var page = await anonymous.GetAsync("/");
        Assert.Equal(HttpStatusCode.OK, page.StatusCode);
        Assert.Equal("text/html", page.Content.Headers.ContentType?.MediaType);
        string html = await page.Content.ReadAsStringAsync();
        Assert.Contains("<script type=\"module\" src=\"app.js\"></script>", html, StringComparison.Ordinal);
        Assert.Contains("script-src 'self'", page.Headers.GetValues("Content-Security-Policy").Single(), StringComparison.Ordinal);
        Assert.Equal("nosniff", page.Headers.GetValues("X-Content-Type-Options").Single());
        var script = await anonymous.GetAsync("/app.js");
        Assert.Equal(HttpStatusCode.OK, script.StatusCode);
        Assert.True((await script.Content.ReadAsByteArrayAsync()).Length > 10_000, "the bundle holds the SignalR client and the charts");
        // Nothing in the page reaches outside the coordinator.
        Assert.DoesNotContain("http://", html, StringComparison.Ordinal);
        Assert.DoesNotContain("https://", html, StringComparison.Ordinal);
        // The API is not part of the page: it still needs a key.
        Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.GetAsync("/api/experiments")).StatusCode);
    }

    private sealed class ShiftedClock : TimeProvider
    {
        public TimeSpan Shift { get; set; }

        public override DateTimeOffset GetUtcNow() => base.GetUtcNow() + Shift;
    }
}
