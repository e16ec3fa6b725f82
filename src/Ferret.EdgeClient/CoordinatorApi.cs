using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Ferret.Core.Algorithms;
using Ferret.Core.Packets;
using Ferret.Onnx.Artifacts;

namespace Ferret.EdgeClient;

/// <summary>An experiment as the coordinator lists it (the fields a client needs).</summary>
public sealed record ExperimentSummary(string Id, string Name, string Algorithm, string State, int Rounds, string ArtifactFingerprint, DateTimeOffset CreatedUtc);

internal sealed record ArtifactFile(string Name, long Bytes);

internal sealed record ArtifactListing(string Fingerprint, string Folder, IReadOnlyList<ArtifactFile> Files);

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

    /// <summary>The completed global updates after a round, in order.</summary>
    public async Task<GlobalUpdate[]> UpdatesAfterAsync(string experimentId, int round, CancellationToken ct)
    {
        var bytes = await _http.GetByteArrayAsync(new Uri($"api/experiments/{Uri.EscapeDataString(experimentId)}/updates?after={round}", UriKind.Relative), ct)
            .ConfigureAwait(false);
        return Wire.Deserialize<GlobalUpdate[]>(bytes);
    }

    /// <summary>
    /// Downloads the artifact package with this fingerprint into <paramref name="directory"/>: files land in a
    /// sibling temporary folder, the package is opened and its parameters checked against the fingerprint,
    /// and only then is the folder moved into place, so a broken download never looks like a package.
    /// </summary>
    public async Task DownloadArtifactAsync(string fingerprint, string directory, IProgress<string>? progress, CancellationToken ct)
    {
        using var response = await _http.GetAsync(new Uri($"api/artifacts/{fingerprint}", UriKind.Relative), ct).ConfigureAwait(false);
        await EnsureAsync(response, $"artifact {fingerprint}", ct).ConfigureAwait(false);
        var listing = await response.Content.ReadFromJsonAsync<ArtifactListing>(Json, ct).ConfigureAwait(false)
            ?? throw new InvalidDataException($"The coordinator sent an empty listing for artifact {fingerprint}.");
        var full = Path.GetFullPath(directory);
        var staging = full.TrimEnd(Path.DirectorySeparatorChar) + $".download-{Environment.ProcessId}";
        if (Directory.Exists(staging))
            Directory.Delete(staging, recursive: true);
        Directory.CreateDirectory(staging);
        try
        {
            foreach (var file in listing.Files)
            {
                progress?.Report($"downloading {file.Name} ({file.Bytes:N0} bytes)");
                await using var stream = await _http.GetStreamAsync(new Uri($"api/artifacts/{fingerprint}/files/{Uri.EscapeDataString(file.Name)}", UriKind.Relative), ct)
                    .ConfigureAwait(false);
                await using var target = File.Create(Path.Combine(staging, file.Name));
                await stream.CopyToAsync(target, ct).ConfigureAwait(false);
            }
            var package = ArtifactPackage.Open(staging);
            if (package.Manifest.ParametersSha256 != fingerprint)
                throw new InvalidDataException($"The downloaded artifact's manifest fingerprint {package.Manifest.ParametersSha256} is not {fingerprint}.");
            // Streamed, so verifying a download never needs the whole model in memory.
            package.VerifyParameters(cancellationToken: ct);
            Directory.CreateDirectory(Path.GetDirectoryName(full)!);
            Directory.Move(staging, full);
        }
        catch
        {
            Directory.Delete(staging, recursive: true);
            throw;
        }
    }

    private static async Task EnsureAsync(HttpResponseMessage response, string what, CancellationToken ct)
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
