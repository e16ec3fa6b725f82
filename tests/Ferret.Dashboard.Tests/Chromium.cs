using Microsoft.Playwright;

namespace Ferret.Dashboard.Tests;

/// <summary>
/// Debian's chromium driven by Playwright's own driver (shipped inside the NuGet package): started once for
/// every test of the collection. When the browser truly cannot start, the reason is kept and every test
/// skips with it; anything else fails.
/// </summary>
public sealed class Chromium : IAsyncLifetime
{
    /// <summary>Debian's build; <c>FERRET_CHROMIUM</c> names another.</summary>
    public static string ExecutablePath => Environment.GetEnvironmentVariable("FERRET_CHROMIUM") is { Length: > 0 } path ? path : "/usr/bin/chromium";

    private static readonly string[] Flags =
    [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
    ];

    private IPlaywright? _playwright;

    public IBrowser? Browser { get; private set; }

    /// <summary>Why no browser could start (then tests skip), or null.</summary>
    public string? Unavailable { get; private set; }

    public async Task InitializeAsync()
    {
        if (!File.Exists(ExecutablePath))
        {
            Unavailable = $"chromium is not installed at {ExecutablePath} (Debian: apt-get install chromium; or set FERRET_CHROMIUM)";
            return;
        }
        _playwright = await Playwright.CreateAsync();
        try
        {
            Browser = await _playwright.Chromium.LaunchAsync(new() { ExecutablePath = ExecutablePath, Args = Flags, Headless = true, Timeout = 60_000 });
        }
        catch (PlaywrightException e)
        {
            Unavailable = $"chromium at {ExecutablePath} did not start: {e.Message.Split('\n')[0]}";
        }
    }

    public async Task DisposeAsync()
    {
        if (Browser is not null)
            await Browser.DisposeAsync();
        _playwright?.Dispose();
    }
}

[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class SharedBrowser : ICollectionFixture<Chromium>
{
    public const string Name = "browser";
}
