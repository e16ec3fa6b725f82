using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Deque.AxeCore.Playwright;
using Ferret.Cli.Tests.EndToEnd;
using Microsoft.Playwright;
using static Microsoft.Playwright.Assertions;

namespace Ferret.Dashboard.Tests;

/// <summary>
/// The coordinator's dashboard in a real browser (Debian's chromium) against a real coordinator process and
/// real edge-client processes on loopback: it loads clean, follows live rounds without a reload, shows a killed
/// client as offline and missing, resumes by itself after the coordinator restarts, lets the admin key act and
/// refuses an observer key, stays usable on a 390 px wide phone, and shows what protects a private experiment with
/// the epsilon it has spent.
/// </summary>
[Collection(SharedBrowser.Name)]
public sealed class DashboardTests(Chromium chromium)
{
    private const float Slow = 180_000; // processes that train share two cores with other suites: wait for events, not for a clock

    [SkippableFact]
    public async Task Page_loads_without_console_errors_signs_in_by_keyboard_and_passes_an_accessibility_scan()
    {
        Skip.If(chromium.Unavailable is not null, chromium.Unavailable);
        using var federation = new Federation(shards: 1);
        await federation.StartCoordinatorAsync();
        await federation.CreateExperimentAsync(rounds: 2, minClients: 1, deadlineSeconds: 60);

        await using var dashboard = await DashboardPage.OpenAsync(chromium, federation.Url, key: null);
        var page = dashboard.Page;
        await Expect(page.GetByRole(AriaRole.Heading, new() { Name = "Sign in" })).ToBeVisibleAsync();
        // Keyboard only: the key field has the focus, Enter submits.
        await Expect(page.GetByLabel("Observer or admin key")).ToBeFocusedAsync();
        await page.Keyboard.TypeAsync(Federation.AdminKey);
        await page.Keyboard.PressAsync("Enter");
        await dashboard.LiveAsync();
        await Expect(page.GetByRole(AriaRole.Heading, new() { Name = "Experiment e2e" })).ToBeVisibleAsync();
        await Expect(page.Locator("#summary-state")).ToHaveTextAsync("created");
        await Expect(page.GetByRole(AriaRole.Heading, new() { Name = "Administration" })).ToBeVisibleAsync();
        Assert.Equal(1, await page.Locator("h1").CountAsync());

        var scan = await page.RunAxe();
        Assert.True(scan.Violations.Length == 0, "Accessibility violations: " + string.Join("; ", scan.Violations.Select(v => $"{v.Id} ({v.Impact}): {v.Help} at {string.Join(", ", v.Nodes.Select(n => n.Target.ToString()))}")));
        dashboard.AssertNoErrors();
    }

    [SkippableFact]
    public async Task Live_rounds_update_progress_and_history_without_a_reload_and_a_killed_client_shows_offline_and_missing()
    {
        Skip.If(chromium.Unavailable is not null, chromium.Unavailable);
        using var federation = new Federation(shards: 3);
        await federation.StartCoordinatorAsync();
        // A long deadline: the test ends as soon as the page shows the killed client, long before the round would close.
        var id = await federation.CreateExperimentAsync(rounds: 2, minClients: 3, deadlineSeconds: 600);
        var observerKey = await MintObserverKeyAsync(federation);

        await using var dashboard = await DashboardPage.OpenAsync(chromium, federation.Url, observerKey);
        var page = dashboard.Page;
        await dashboard.LiveAsync();
        await dashboard.MarkAsync();
        await Expect(page.Locator("#session-role")).ToContainTextAsync("read-only");
        await Expect(page.Locator("#no-open-round")).ToBeVisibleAsync();

        await federation.StartEdgeAsync(1, id);
        await federation.StartEdgeAsync(2, id);
        // The third client dies the moment it is assigned round 2, before training (the edge client's own kill point:
        // a kill from this test's output callback came too late on a fast machine, after the packet had gone out).
        var victim = await federation.StartEdgeAsync(3, id, environment: new Dictionary<string, string> { ["FERRET_EDGE_KILL_AT_ROUND"] = "2" });

        // Round 1 completes: its row appears in the history and the charts draw, all without a reload.
        var round1 = page.Locator("#history tr[data-round='1']");
        await Expect(round1).ToContainTextAsync("completed", new() { Timeout = Slow });
        await Expect(round1).ToContainTextAsync("3/3");
        await Expect(page.Locator("#chart-loss canvas")).ToHaveCountAsync(1);
        await Expect(page.Locator("#clients tbody tr")).ToHaveCountAsync(3);

        // A page opened mid-experiment fills in from the REST views.
        await using (var late = await DashboardPage.OpenAsync(chromium, federation.Url, observerKey))
        {
            await Expect(late.Page.Locator("#history tr[data-round='1']")).ToContainTextAsync("completed");
            await Expect(late.Page.Locator("#summary-fingerprint")).Not.ToContainTextAsync("none reported");
            late.AssertNoErrors();
        }

        // Round 2: the two live clients deliver; the killed one is offline and missing, while the round is still open.
        await Expect(page.Locator("#open-round-name")).ToHaveTextAsync("Round 2", new() { Timeout = Slow });
        await Expect(page.Locator("#open-round-received")).ToHaveTextAsync("2", new() { Timeout = Slow });
        var victimRow = page.Locator("#clients tbody tr", new() { HasText = "edge-3" });
        await Expect(victimRow).ToContainTextAsync("offline", new() { Timeout = Slow });
        await Expect(page.Locator("#open-round-clients li", new() { HasText = "edge-3" })).ToContainTextAsync("offline, missing");
        await Expect(page.Locator("#clients tbody tr", new() { HasText = "edge-1" })).ToContainTextAsync("online");
        Assert.True(victim.HasExited, "the third edge client was killed during round 2");
        Assert.True(await dashboard.StillMarkedAsync(), "the page updated itself; it was never reloaded");
        dashboard.AssertNoErrors();
    }

    [SkippableFact]
    public async Task The_page_reconnects_by_itself_after_the_coordinator_restarts_and_follows_the_next_round()
    {
        Skip.If(chromium.Unavailable is not null, chromium.Unavailable);
        using var federation = new Federation(shards: 1);
        var coordinator = await federation.StartCoordinatorAsync();
        var id = await federation.CreateExperimentAsync(rounds: 1, minClients: 1, deadlineSeconds: 600);

        await using var dashboard = await DashboardPage.OpenAsync(chromium, federation.Url, Federation.AdminKey);
        var page = dashboard.Page;
        await dashboard.LiveAsync();
        await dashboard.MarkAsync();

        coordinator.Kill();
        await Expect(page.Locator("#connection")).Not.ToHaveAttributeAsync("data-state", "live", new() { Timeout = 60_000 });
        await federation.StartCoordinatorAsync("coordinator-2");
        await dashboard.LiveAsync(Slow);

        // Live events flow again on the new connection: a device joins and its round completes on the page.
        await federation.StartEdgeAsync(1, id);
        await Expect(page.Locator("#history tr[data-round='1']")).ToContainTextAsync("completed", new() { Timeout = Slow });
        await Expect(page.Locator("#clients tbody tr", new() { HasText = "edge-1" })).ToBeVisibleAsync();
        Assert.True(await dashboard.StillMarkedAsync(), "the page resumed by itself; it was never reloaded");
        // The browser reports the refused connections while the coordinator was down; nothing else may go wrong.
        Assert.True(dashboard.Errors.All(e => e.Contains("ERR_CONNECTION_REFUSED", StringComparison.Ordinal) || e.Contains("WebSocket", StringComparison.Ordinal)),
            "Unexpected errors: " + string.Join('\n', dashboard.Errors));
    }

    [SkippableFact]
    public async Task Admin_actions_work_with_the_admin_key_and_are_refused_with_an_observer_key()
    {
        Skip.If(chromium.Unavailable is not null, chromium.Unavailable);
        using var federation = new Federation(shards: 1);
        await federation.StartCoordinatorAsync();
        string link;

        await using (var admin = await DashboardPage.OpenAsync(chromium, federation.Url, Federation.AdminKey))
        {
            var page = admin.Page;
            await admin.LiveAsync();
            await Expect(page.Locator("#no-experiments")).ToBeVisibleAsync();

            // Create an experiment from the artifact package the coordinator knows, with the reference settings.
            await page.GetByRole(AriaRole.Button, new() { Name = "New experiment" }).ClickAsync();
            var dialog = page.GetByRole(AriaRole.Dialog, new() { Name = "New experiment" });
            await Expect(dialog).ToBeVisibleAsync();
            await Expect(dialog.GetByLabel("Artifact package")).ToHaveValueAsync("tiny-gpt2");
            await Expect(dialog.GetByLabel("Candidate seeds (K)")).ToHaveValueAsync("200");
            await dialog.GetByLabel("Name").FillAsync("from the browser");
            await dialog.GetByLabel("Rounds").FillAsync("3");
            await dialog.GetByLabel("Round deadline, seconds").FillAsync("120");
            await dialog.GetByRole(AriaRole.Button, new() { Name = "Create experiment" }).ClickAsync();
            await Expect(page.GetByRole(AriaRole.Heading, new() { Name = "Experiment from the browser" })).ToBeVisibleAsync();
            var experiments = await federation.Admin.GetFromJsonAsync<JsonElement>("api/experiments");
            var created = Assert.Single(experiments.EnumerateArray());
            Assert.Equal("from the browser", created.GetProperty("name").GetString());
            Assert.Equal(3, created.GetProperty("rounds").GetInt32());
            Assert.Equal(120, created.GetProperty("roundDeadlineSeconds").GetInt32());

            // Enrol a device: the token is shown once, inside the command line to run on it.
            await page.GetByLabel("Label (for your records)").FillAsync("lab laptop");
            await page.GetByRole(AriaRole.Button, new() { Name = "Issue enrolment token" }).ClickAsync();
            await Expect(page.Locator("#enrol-command")).ToContainTextAsync("--enrolment-token enrol_");
            var command = await page.Locator("#enrol-command").TextContentAsync() ?? "";
            Assert.StartsWith($"ferret-edge --coordinator {federation.Url.ToString().TrimEnd('/')} --enrolment-token enrol_", command);
            Assert.Contains("--experiment " + created.GetProperty("id").GetString(), command, StringComparison.Ordinal);
            Assert.Contains("--artifacts artifacts/tiny-gpt2", command, StringComparison.Ordinal);
            // The token really enrols a device.
            var token = command.Split(' ')[4];
            using var anonymous = new HttpClient { BaseAddress = federation.Url };
            var enrol = await anonymous.PostAsJsonAsync("api/clients/enrol", new { enrolmentToken = token, name = "lab laptop" });
            Assert.True(enrol.IsSuccessStatusCode, $"the token from the page enrols a device: {(int)enrol.StatusCode}");

            // Stop the experiment (confirming the browser's question).
            page.Dialog += async (_, d) => await d.AcceptAsync();
            await page.GetByRole(AriaRole.Button, new() { Name = "Stop experiment" }).ClickAsync();
            await Expect(page.Locator("#summary-state")).ToHaveTextAsync("stopped");

            // Share read-only access by a one-time link.
            await page.GetByLabel("Who it is for").FillAsync("operations screen");
            await page.GetByRole(AriaRole.Button, new() { Name = "Create one-time link" }).ClickAsync();
            await Expect(page.Locator("#observer-link")).ToContainTextAsync("/#signin=signin_");
            link = await page.Locator("#observer-link").TextContentAsync() ?? "";
            admin.AssertNoErrors();
        }

        await using var observer = await DashboardPage.OpenUrlAsync(chromium, link);
        await observer.LiveAsync();
        Assert.DoesNotContain("signin", observer.Page.Url, StringComparison.Ordinal);
        await Expect(observer.Page.Locator("#session-role")).ToHaveTextAsync("Watching as operations screen (read-only)");
        await Expect(observer.Page.GetByRole(AriaRole.Heading, new() { Name = "Experiment from the browser" })).ToBeVisibleAsync();
        await Expect(observer.Page.GetByRole(AriaRole.Button, new() { Name = "New experiment" })).ToBeHiddenAsync();
        await Expect(observer.Page.GetByRole(AriaRole.Heading, new() { Name = "Administration" })).ToBeHiddenAsync();
        observer.AssertNoErrors();
        // The link works once.
        await using (var again = await DashboardPage.OpenUrlAsync(chromium, link))
            await Expect(again.Page.Locator("#sign-in-error")).ToContainTextAsync("already used or has expired");
        var observerKey = await observer.Page.EvaluateAsync<string>("() => localStorage.getItem('ferret.dashboard.key')");
        Assert.StartsWith("observe_", observerKey);
        // The coordinator itself refuses the observer key, whatever the page shows: the same call from the page's origin.
        var status = await observer.Page.EvaluateAsync<int>(
            "async key => (await fetch('/api/experiments', { method: 'POST', headers: { Authorization: 'Bearer ' + key, 'Content-Type': 'application/json' }, body: JSON.stringify({ name: 'x', algorithm: 'ferret', artifact: 'tiny-gpt2', rounds: 1, fraction: 1 }) })).status",
            observerKey);
        Assert.Equal((int)HttpStatusCode.Forbidden, status);
        var anonymousStatus = await observer.Page.EvaluateAsync<int>("async () => (await fetch('/api/enrolments', { method: 'POST' })).status");
        Assert.Equal((int)HttpStatusCode.Unauthorized, anonymousStatus);
    }

    [SkippableFact]
    public async Task The_page_stays_usable_at_390_px_wide()
    {
        Skip.If(chromium.Unavailable is not null, chromium.Unavailable);
        using var federation = new Federation(shards: 1);
        await federation.StartCoordinatorAsync();
        await federation.CreateExperimentAsync(rounds: 2, minClients: 1, deadlineSeconds: 60);

        await using var phone = await DashboardPage.OpenAsync(chromium, federation.Url, Federation.AdminKey, width: 390, height: 844);
        var page = phone.Page;
        await phone.LiveAsync();
        await Expect(page.GetByRole(AriaRole.Heading, new() { Name = "Experiment e2e" })).ToBeVisibleAsync();
        await Expect(page.Locator("#chart-loss")).ToBeVisibleAsync();
        int width = await page.EvaluateAsync<int>("() => document.documentElement.scrollWidth");
        Assert.True(width <= 390, $"the page scrolls sideways: {width} px wide in a 390 px viewport");
        // Every card (and the wide tables' scrolling regions inside them) lies within the screen; the tables scroll inside.
        var cards = page.Locator("main .card, main .summary, main .scroll");
        Assert.True(await cards.CountAsync() >= 10, "the experiment's cards are on the page");
        foreach (var card in await cards.AllAsync())
        {
            var box = await card.BoundingBoxAsync();
            string what = await card.EvaluateAsync<string>("e => e.id || e.getAttribute('aria-labelledby') || e.getAttribute('aria-label') || e.className");
            Assert.True(box is null || (box.X >= 0 && box.X + box.Width <= 391), $"{what} lies within 390 px: {box?.X} + {box?.Width}");
        }
        // The create form fits the phone and its controls can be reached.
        await page.GetByRole(AriaRole.Button, new() { Name = "New experiment" }).ClickAsync();
        var dialog = page.GetByRole(AriaRole.Dialog, new() { Name = "New experiment" });
        var dialogBox = await dialog.BoundingBoxAsync();
        Assert.True(dialogBox is not null && dialogBox.Width <= 390, $"the create dialog fits: {dialogBox?.Width} px");
        await dialog.GetByRole(AriaRole.Button, new() { Name = "Create experiment" }).ScrollIntoViewIfNeededAsync();
        await Expect(dialog.GetByRole(AriaRole.Button, new() { Name = "Create experiment" })).ToBeInViewportAsync();
        phone.AssertNoErrors();
    }

    private static async Task<string> MintObserverKeyAsync(Federation federation)
    {
        var response = await federation.Admin.PostAsJsonAsync("api/observer-keys", new { label = "browser test" });
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, $"minting an observer key: {text}");
        return JsonDocument.Parse(text).RootElement.GetProperty("key").GetString()!;
    }

    [SkippableFact]
    public async Task A_private_experiment_shows_its_protection_and_the_epsilon_spent_after_each_round()
    {
        Skip.If(chromium.Unavailable is not null, chromium.Unavailable);
        using var federation = new Federation(shards: 1);
        await federation.StartCoordinatorAsync();
        var id = await federation.CreateExperimentAsync(rounds: 1, minClients: 1, deadlineSeconds: 600,
            differentialPrivacy: new { noiseMultiplier = 1.0, clipNorm = 0.05 });

        await using var dashboard = await DashboardPage.OpenAsync(chromium, federation.Url, Federation.AdminKey);
        var page = dashboard.Page;
        await dashboard.LiveAsync();
        var summary = page.Locator("#summary-privacy");
        await Expect(summary).ToContainTextAsync("DP (central noise, z = 1");
        await Expect(summary).ToContainTextAsync("ε = 0.00 at δ");

        var edge = await federation.StartEdgeAsync(1, id);
        await Federation.ExitsCleanlyAsync(edge, 300);
        var experiment = await federation.ExperimentAsync(id);
        double epsilon = experiment.GetProperty("privacy").GetProperty("epsilonSpent").GetDouble();
        Assert.True(epsilon > 0, $"one released round spends some epsilon: {experiment}");
        // The same figure the status view holds, on the summary and on the round's row, without a reload.
        string spent = "ε = " + epsilon.ToString("F2", CultureInfo.InvariantCulture);
        await Expect(summary).ToContainTextAsync(spent + " at δ", new() { Timeout = Slow });
        await Expect(summary).ToContainTextAsync("after 1 rounds");
        await Expect(page.Locator("#history")).ToContainTextAsync(spent + " so far", new() { Timeout = Slow });
        dashboard.AssertNoErrors();
    }
}
