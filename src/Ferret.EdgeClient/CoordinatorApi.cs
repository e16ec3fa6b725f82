using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Ferret.Core.Algorithms;
using Ferret.Core.Packets;

namespace Ferret.EdgeClient;

/// <summary>An experiment as the coordinator lists it (the fields a client needs).</summary>
public sealed record ExperimentSummary(string Id, string Name, string Algorithm, string State, int Rounds, string ArtifactFingerprint, DateTimeOffset CreatedUtc);

/// <summary>The coordinator's REST API as the edge client uses it: enrolment, experiments, catch-up, artifact download.</summary>
public sealed class CoordinatorApi : IDisposable
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);
    private readonly HttpClient _http;

    public CoordinatorApi(Uri coordinator, string? token)
    {
        ArgumentNullException.ThrowIfNull(coordinator);
        _http = new HttpClient { BaseAddress = coordinator, Timeout = TimeSpan.FromMinutes(10) };
        if (token is not null)
            _http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
    }

    /// <summary>Redeems a single-use enrolment token for this device's client token.</summary>
    public static async Task<(string ClientId, string Token)> EnrolAsync(Uri coordinator, string enrolmentToken, string name, object capabilities, CancellationToken ct)
    {
        using var api = new CoordinatorApi(coordinator, null);
        using var response = await api._http.PostAsJsonAsync("api/clients/enrol", new { enrolmentToken, name, capabilities }, Json, ct).ConfigureAwait(false);
        await EnsureAsync(response, "enrolment", ct).ConfigureAwait(false);
        var body = await response.Content.ReadFromJsonAsync<JsonElement>(Json, ct).ConfigureAwait(false);
        return (body.GetProperty("clientId").GetString()!, body.GetProperty("token").GetString()!);
    }

    /// <summary>This client's id (checks the token).</summary>
    public async Task<string> WhoAmIAsync(CancellationToken ct)
    {
        using var response = await _http.GetAsync(new Uri("api/clients/me", UriKind.Relative), ct).ConfigureAwait(false);
        await EnsureAsync(response, "the client token", ct).ConfigureAwait(false);
        var body = await response.Content.ReadFromJsonAsync<JsonElement>(Json, ct).ConfigureAwait(false);
        return body.GetProperty("id").GetString()!;
    }

    public async Task<IReadOnlyList<ExperimentSummary>> ListExperimentsAsync(CancellationToken ct)
    {
        using var response = await _http.GetAsync(new Uri("api/experiments", UriKind.Relative), ct).ConfigureAwait(false);
        await EnsureAsync(response, "listing experiments", ct).ConfigureAwait(false);
        return await response.Content.ReadFromJsonAsync<List<ExperimentSummary>>(Json, ct).ConfigureAwait(false) ?? [];
    }

    /// <summary>The experiment's descriptor (candidate seeds, blocks, settings, artifact fingerprint).</summary>
    public async Task<ExperimentDescriptor> DescriptorAsync(string experimentId, CancellationToken ct)
    {
        using var response = await _http.GetAsync(new Uri($"api/experiments/{Uri.EscapeDataString(experimentId)}/descriptor", UriKind.Relative), ct)
            .ConfigureAwait(false);
        await EnsureAsync(response, $"the descriptor of experiment '{experimentId}'", ct).ConfigureAwait(false);
        return Wire.Deserialize<ExperimentDescriptor>(await response.Content.ReadAsByteArrayAsync(ct).ConfigureAwait(false));
    }

    /// <summary>The completed global updates after a round, in order; run-length fields expand to at most <paramref name="maxEntries"/> (the experiment's shape).</summary>
    public async Task<GlobalUpdate[]> UpdatesAfterAsync(string experimentId, int round, int maxEntries, CancellationToken ct)
    {
        using var response = await _http.GetAsync(new Uri($"api/experiments/{Uri.EscapeDataString(experimentId)}/updates?after={round}", UriKind.Relative), ct)
            .ConfigureAwait(false);
        await EnsureAsync(response, $"the global updates of experiment '{experimentId}'", ct).ConfigureAwait(false);
        return Wire.Deserialize<GlobalUpdate[]>(await response.Content.ReadAsByteArrayAsync(ct).ConfigureAwait(false), maxEntries);
    }

    /// <summary>Downloads and verifies the artifact package with this fingerprint into <paramref name="directory"/> (see <see cref="ArtifactDownload"/>).</summary>
    public Task DownloadArtifactAsync(string fingerprint, string directory, Action<string> say, CancellationToken ct) =>
        ArtifactDownload.DownloadAsync(_http, fingerprint, directory, say, ct);

    internal static async Task EnsureAsync(HttpResponseMessage response, string what, CancellationToken ct)
    {
        if (response.IsSuccessStatusCode)
            return;
        var body = await response.Content.ReadAsStringAsync(ct).ConfigureAwait(false);
        string detail = body.Length > 400 ? body[..400] : body;
        if (response.StatusCode is HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden)
            throw new UnauthorizedAccessException($"The coordinator refused {what} ({(int)response.StatusCode}): check the token. {detail}".TrimEnd());
        throw new HttpRequestException($"The coordinator answered {(int)response.StatusCode} to {what}: {detail}", null, response.StatusCode);
    }

    public void Dispose() => _http.Dispose();
}
