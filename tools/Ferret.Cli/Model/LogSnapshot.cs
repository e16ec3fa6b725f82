using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using Ferret.Core.Algorithms;
using Ferret.Core.Packets;
using Ferret.EdgeClient;

namespace Ferret.Cli.Model;

/// <summary>What rebuilding an experiment's model needs from its round log, read from a coordinator or from the SQLite file.</summary>
internal sealed record LogSnapshot(ExperimentDescriptor Descriptor, IReadOnlyList<GlobalUpdate> Updates, int LastClosedRound, IReadOnlyDictionary<int, List<string>> Reports)
{
    public IEnumerable<string> ReportsAt(int round) => Reports.GetValueOrDefault(round) ?? [];

    /// <summary>Reads the round log file (a copy of a coordinator's SQLite database).</summary>
    public static LogSnapshot FromFile(string path, string experimentId, int? round)
    {
        using var log = RoundLogFile.Open(path);
        var descriptor = log.Descriptor(experimentId);
        var updates = log.Updates(experimentId);
        int closed = log.LastClosedRound(experimentId);
        var reports = new Dictionary<int, List<string>>();
        foreach (var r in updates.Select(u => u.Round).Where(r => r <= (round ?? closed)))
            reports[r] = log.Fingerprints(experimentId, r);
        return new LogSnapshot(descriptor, updates, closed, reports);
    }

    /// <summary>Reads the coordinator's API (the admin key: round details carry the participants' fingerprints).</summary>
    public static async Task<LogSnapshot> FromCoordinatorAsync(CoordinatorApi api, Uri coordinator, string token, string experimentId, int? round, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(api);
        var descriptor = await api.DescriptorAsync(experimentId, ct).ConfigureAwait(false);
        // Run-length fields expand to at most the experiment's own shape (as the edge client reads them).
        var updates = await api.UpdatesAfterAsync(experimentId, 0, (int)Math.Min(int.MaxValue, PacketLimits.MaxEntries(descriptor)), ct).ConfigureAwait(false);
        using var http = new HttpClient { BaseAddress = coordinator };
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        var status = await GetJsonAsync(http, $"api/experiments/{Uri.EscapeDataString(experimentId)}", ct).ConfigureAwait(false);
        int closed = status.GetProperty("roundLog").EnumerateArray().Where(r => r.GetProperty("state").GetString() != "Open")
            .Select(r => r.GetProperty("round").GetInt32()).DefaultIfEmpty(0).Max();
        var reports = new Dictionary<int, List<string>>();
        foreach (var r in updates.Select(u => u.Round).Where(r => r <= (round ?? closed)))
        {
            var detail = await GetJsonAsync(http, $"api/experiments/{Uri.EscapeDataString(experimentId)}/rounds/{r}", ct).ConfigureAwait(false);
            reports[r] = [.. detail.GetProperty("fingerprints").EnumerateArray().Select(f => f.GetProperty("fingerprint").GetString()!)];
        }
        return new LogSnapshot(descriptor, updates, closed, reports);
    }

    private static async Task<JsonElement> GetJsonAsync(HttpClient http, string path, CancellationToken ct)
    {
        using var response = await http.GetAsync(new Uri(path, UriKind.Relative), ct).ConfigureAwait(false);
        if (response.StatusCode is HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden)
            throw new UnauthorizedAccessException($"The coordinator refused {path} ({(int)response.StatusCode}): rebuilding a model needs the admin key (--token or FERRET_TOKEN).");
        var text = await response.Content.ReadAsStringAsync(ct).ConfigureAwait(false);
        if (!response.IsSuccessStatusCode)
            throw new InvalidDataException($"The coordinator answered {(int)response.StatusCode} to {path}: {(text.Length > 300 ? text[..300] : text)}");
        return JsonDocument.Parse(text).RootElement.Clone();
    }
}
