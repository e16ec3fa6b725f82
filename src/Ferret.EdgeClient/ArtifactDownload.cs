using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text.Json;
using Ferret.Onnx.Artifacts;

namespace Ferret.EdgeClient;

internal sealed record ArtifactFile(string Name, long Bytes);

internal sealed record ArtifactListing(string Fingerprint, string Folder, IReadOnlyList<ArtifactFile> Files);

/// <summary>
/// Downloads an artifact package by fingerprint without trusting the coordinator further than the fingerprint:
/// every file name must be a plain name (no separators, no dot-dot), every file lands in a staging folder beside
/// the target, is cut off at the size the listing announced, and must match the SHA-256 the package's manifest
/// gives it; the manifest must carry the fingerprint asked for, and the parameters must hash to it. Only then
/// is the folder moved into place, so a broken or hostile download never looks like a package.
/// </summary>
internal static class ArtifactDownload
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    /// <summary>A file name as a package may hold it: a plain name of at most 255 characters.</summary>
    public static bool IsPlainFileName(string? name) =>
        !string.IsNullOrEmpty(name) && name.Length <= 255 && name is not ("." or "..") && !name.StartsWith('.')
        && name.IndexOfAny(['/', '\\', ':', '\0']) < 0 && !name.Any(char.IsControl) && Path.GetFileName(name) == name;

    /// <summary>Downloads into <paramref name="directory"/>; retries transient failures from scratch.</summary>
    public static Task DownloadAsync(HttpClient http, string fingerprint, string directory, Action<string> say, CancellationToken ct) =>
        Transient.RetryAsync($"downloading artifact {fingerprint[..16]}", c => DownloadOnceAsync(http, fingerprint, directory, say, c), say, ct);

    private static async Task DownloadOnceAsync(HttpClient http, string fingerprint, string directory, Action<string> say, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(http);
        if (fingerprint is not { Length: 64 } || !fingerprint.All(char.IsAsciiHexDigitLower))
            throw new InvalidDataException($"'{fingerprint}' is not an artifact fingerprint (64 lower-case hex digits).");
        using var response = await http.GetAsync(new Uri($"api/artifacts/{fingerprint}", UriKind.Relative), ct).ConfigureAwait(false);
        await CoordinatorApi.EnsureAsync(response, $"artifact {fingerprint}", ct).ConfigureAwait(false);
        var listing = await response.Content.ReadFromJsonAsync<ArtifactListing>(Json, ct).ConfigureAwait(false)
            ?? throw new InvalidDataException($"The coordinator sent an empty listing for artifact {fingerprint}.");
        var names = listing.Files.Select(f => f.Name).ToList();
        if (names.FirstOrDefault(n => !IsPlainFileName(n)) is { } bad)
            throw new InvalidDataException($"The coordinator's listing of artifact {fingerprint} names a file '{bad}' that is not a plain file name; refusing the package.");
        if (names.Distinct(StringComparer.OrdinalIgnoreCase).Count() != names.Count || !names.Contains(ArtifactManifest.FileName))
            throw new InvalidDataException($"The coordinator's listing of artifact {fingerprint} repeats a file or lacks {ArtifactManifest.FileName}; refusing the package.");

        var full = Path.GetFullPath(directory).TrimEnd(Path.DirectorySeparatorChar);
        var staging = full + $".download-{Environment.ProcessId}";
        if (Directory.Exists(staging))
            Directory.Delete(staging, recursive: true);
        Directory.CreateDirectory(staging);
        try
        {
            // The manifest first: it says which files the package has and what each must hash to.
            var manifestFile = listing.Files.Single(f => f.Name == ArtifactManifest.FileName);
            await FetchAsync(http, fingerprint, manifestFile, staging, expectedSha256: null, say, ct).ConfigureAwait(false);
            var manifestPath = Path.Combine(staging, ArtifactManifest.FileName);
            var manifest = ArtifactManifest.Parse(await File.ReadAllTextAsync(manifestPath, ct).ConfigureAwait(false), manifestPath);
            if (manifest.ParametersSha256 != fingerprint)
                throw new InvalidDataException($"The downloaded manifest is for artifact {manifest.ParametersSha256}, not {fingerprint}.");
            var hashes = manifest.FileSha256;
            if (hashes is not null)
            {
                if (hashes.Keys.FirstOrDefault(n => !IsPlainFileName(n)) is { } odd)
                    throw new InvalidDataException($"The downloaded manifest lists a file '{odd}' that is not a plain file name; refusing the package.");
                var unlisted = hashes.Keys.Except(names).ToList();
                var unhashed = names.Where(n => n != ArtifactManifest.FileName).Except(hashes.Keys).ToList();
                if (unlisted.Count > 0 || unhashed.Count > 0)
                    throw new InvalidDataException($"Artifact {fingerprint}: the coordinator's files and the manifest's disagree (missing: {string.Join(", ", unlisted)}; unhashed: {string.Join(", ", unhashed)}).");
            }
            else
            {
                say($"artifact {fingerprint[..16]} predates per-file hashes; only its parameters can be verified");
            }
            foreach (var file in listing.Files.Where(f => f.Name != ArtifactManifest.FileName))
                await FetchAsync(http, fingerprint, file, staging, hashes?[file.Name], say, ct).ConfigureAwait(false);
            var package = ArtifactPackage.Open(staging);
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

    /// <summary>One file into the staging folder: at most the announced size, hashed on the way, checked when a hash is known.</summary>
    private static async Task FetchAsync(HttpClient http, string fingerprint, ArtifactFile file, string staging, string? expectedSha256, Action<string> say,
        CancellationToken ct)
    {
        if (file.Bytes < 0)
            throw new InvalidDataException($"The coordinator announced {file.Bytes} bytes for '{file.Name}'.");
        say($"downloading {file.Name} ({file.Bytes:N0} bytes)");
        using var response = await http.GetAsync(new Uri($"api/artifacts/{fingerprint}/files/{Uri.EscapeDataString(file.Name)}", UriKind.Relative),
            HttpCompletionOption.ResponseHeadersRead, ct).ConfigureAwait(false);
        await CoordinatorApi.EnsureAsync(response, $"file '{file.Name}' of artifact {fingerprint}", ct).ConfigureAwait(false);
        await using var source = await response.Content.ReadAsStreamAsync(ct).ConfigureAwait(false);
        var target = Path.Combine(staging, file.Name);
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        long total = 0;
        await using (var output = File.Create(target))
        {
            var buffer = new byte[1 << 16];
            int n;
            while ((n = await source.ReadAsync(buffer, ct).ConfigureAwait(false)) > 0)
            {
                total += n;
                if (total > file.Bytes)
                    throw new InvalidDataException($"'{file.Name}' of artifact {fingerprint} is longer than the {file.Bytes} bytes announced; refusing the package.");
                sha.AppendData(buffer, 0, n);
                await output.WriteAsync(buffer.AsMemory(0, n), ct).ConfigureAwait(false);
            }
        }
        if (total != file.Bytes)
            throw new IOException($"'{file.Name}' of artifact {fingerprint} ended after {total} of {file.Bytes} bytes.");
        string actual = Convert.ToHexStringLower(sha.GetHashAndReset());
        if (expectedSha256 is not null && actual != expectedSha256)
            throw new InvalidDataException($"'{file.Name}' of artifact {fingerprint} has SHA-256 {actual}; its manifest says {expectedSha256}. Refusing the package.");
    }
}
