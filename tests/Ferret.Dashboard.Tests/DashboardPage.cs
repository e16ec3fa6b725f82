using System.Collections.Concurrent;
using Microsoft.Playwright;

namespace Ferret.Dashboard.Tests;

/// <summary>One browser context on the dashboard, signed in by a key in the link, collecting console errors and page errors.</summary>
internal sealed class DashboardPage : IAsyncDisposable
{
    private readonly IBrowserContext _context;
    private readonly ConcurrentQueue<string> _errors = new();

    private DashboardPage(IBrowserContext context, IPage page)
    {
        _context = context;
        Page = page;
        page.Console += (_, m) =>
        {
            if (m.Type == "error")
                _errors.Enqueue($"console: {m.Text}");
        };
        page.PageError += (_, e) => _errors.Enqueue($"page error: {e}");
    }

    public IPage Page { get; }

    public IReadOnlyCollection<string> Errors => _errors;

    public static Task<DashboardPage> OpenAsync(Chromium chromium, Uri coordinator, string? key, int width = 1280, int height = 900) =>
        OpenUrlAsync(chromium, key is null ? coordinator.ToString() : $"{coordinator}#key={Uri.EscapeDataString(key)}", width, height);

    public static async Task<DashboardPage> OpenUrlAsync(Chromium chromium, string url, int width = 1280, int height = 900)
    {
        ArgumentNullException.ThrowIfNull(chromium);
        var context = await chromium.Browser!.NewContextAsync(new() { ViewportSize = new() { Width = width, Height = height }, BypassCSP = false });
        context.SetDefaultTimeout(30_000);
        var page = await context.NewPageAsync();
        var dashboard = new DashboardPage(context, page);
        await page.GotoAsync(url);
        return dashboard;
    }

    /// <summary>Waits until the page says it is live on the hub.</summary>
    public Task LiveAsync(float timeoutMs = 60_000) =>
        Assertions.Expect(Page.Locator("#connection")).ToHaveAttributeAsync("data-state", "live", new() { Timeout = timeoutMs });

    /// <summary>Marks the document: the mark survives as long as the page is never reloaded.</summary>
    public Task MarkAsync() => Page.EvaluateAsync("() => { window.__notReloaded = true; }");

    public Task<bool> StillMarkedAsync() => Page.EvaluateAsync<bool>("() => window.__notReloaded === true");

    public void AssertNoErrors() => Assert.True(_errors.IsEmpty, "The page logged errors:\n" + string.Join('\n', _errors));

    public async ValueTask DisposeAsync() => await _context.DisposeAsync();
}
