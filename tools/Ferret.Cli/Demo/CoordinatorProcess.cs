using System.Net.Http.Json;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace Ferret.Cli.Demo;

/// <summary>Starts the coordinator as a separate process on loopback and waits until it listens.</summary>
internal static partial class CoordinatorProcess
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    /// <summary>
    /// Starts <c>Ferret.Coordinator</c> at <paramref name="url"/> (port 0 picks a free one) with its round log
    /// at <paramref name="databasePath"/>; returns the process and the address it actually listens on.
    /// </summary>
    public static async Task<(ChildProcess Process, Uri Url)> StartAsync(string name, string url, string adminKey, string databasePath,
        string artifactsRoot, string logPath, IEnumerable<string>? settings = null, CancellationToken ct = default)
    {
        var listening = new TaskCompletionSource<Uri>(TaskCreationOptions.RunContinuationsAsynchronously);
        // The admin key travels in the environment, not on the command line that `ps` shows every user.
        var process = new ChildProcess(name, Deployables.Coordinator,
            ["--urls", url, "--Ferret:DatabasePath", databasePath, "--Ferret:ArtifactsDirectory", artifactsRoot, .. settings ?? []],
            logPath,
            line =>
            {
                if (ListeningLine().Match(line) is { Success: true } m)
                    listening.TrySetResult(new Uri(m.Groups[1].Value));
            },
            new Dictionary<string, string> { ["ASPNETCORE_ENVIRONMENT"] = "Production", ["Ferret__AdminKey"] = adminKey });
        try
        {
            var exited = process.WaitAsync(ct).ContinueWith(_ => (Uri?)null, TaskScheduler.Default);
            var first = await Task.WhenAny(listening.Task!, exited!).WaitAsync(TimeSpan.FromSeconds(60), ct).ConfigureAwait(false);
            var actual = await first.ConfigureAwait(false)
                ?? throw new InvalidOperationException($"The coordinator exited with code {process.ExitCode} before listening; see {logPath}.");
            return (process, actual);
        }
        catch
        {
            process.Dispose();
            throw;
        }
    }

    /// <summary>POSTs JSON to the coordinator's API; a refusal becomes an error carrying the coordinator's answer.</summary>
    public static async Task<JsonElement> PostAsync(HttpClient http, string path, object body, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(http);
        using var response = await http.PostAsJsonAsync(path, body, Json, ct).ConfigureAwait(false);
        var text = await response.Content.ReadAsStringAsync(ct).ConfigureAwait(false);
        if (!response.IsSuccessStatusCode)
            throw new InvalidOperationException($"POST {path} answered {(int)response.StatusCode}: {text}");
        return JsonDocument.Parse(text).RootElement.Clone();
    }

    [GeneratedRegex(@"Now listening on: (http://\S+)")]
    private static partial Regex ListeningLine();
}
