using System.Collections.Concurrent;
using Ferret.Coordinator.Security;
using Ferret.Core.Protocol;
using Ferret.Onnx.Artifacts;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;

namespace Ferret.Coordinator.Artifacts;

/// <summary>One file of an artifact package as served for download.</summary>
public sealed record ArtifactFileView(string Name, long Bytes);

/// <summary>An artifact package known by the fingerprint (SHA-256) of its initial parameters.</summary>
public sealed record ArtifactView(string Fingerprint, string Folder, string Family, long Parameters, IReadOnlyList<ArtifactFileView> Files);

/// <summary>
/// The artifact packages in the coordinator's artifacts directory, keyed by fingerprint. Only manifests are
/// read (cheap); the index is rebuilt when a fingerprint is asked for that it does not know.
/// </summary>
public sealed class ArtifactIndex(IOptions<CoordinatorOptions> options)
{
    private ConcurrentDictionary<string, ArtifactView> _byFingerprint = new(StringComparer.Ordinal);

    public IReadOnlyList<ArtifactView> List()
    {
        Refresh();
        return [.. _byFingerprint.Values.OrderBy(v => v.Folder, StringComparer.Ordinal)];
    }

    public ArtifactView? Find(string fingerprint)
    {
        if (fingerprint is not { Length: 64 } || !fingerprint.All(char.IsAsciiHexDigitLower))
            return null;
        if (_byFingerprint.TryGetValue(fingerprint, out var hit) && Directory.Exists(Path.Combine(options.Value.ArtifactsDirectory, hit.Folder)))
            return hit;
        Refresh();
        return _byFingerprint.GetValueOrDefault(fingerprint);
    }

    public string PathOf(ArtifactView artifact, string file) => Path.Combine(options.Value.ArtifactsDirectory, artifact.Folder, file);

    /// <summary>The artifacts folder everything served must lie in.</summary>
    public string Root => options.Value.ArtifactsDirectory;

    private void Refresh()
    {
        var index = new ConcurrentDictionary<string, ArtifactView>(StringComparer.Ordinal);
        var root = options.Value.ArtifactsDirectory;
        if (Directory.Exists(root))
        {
            foreach (var dir in Directory.EnumerateDirectories(root))
            {
                if (!ArtifactPaths.IsConfined(root, dir))
                    continue; // a package linked in from outside the artifacts folder is not served
                var manifestPath = Path.Combine(dir, ArtifactManifest.FileName);
                if (!File.Exists(manifestPath))
                    continue;
                ArtifactManifest manifest;
                try
                {
                    manifest = ArtifactManifest.Parse(File.ReadAllText(manifestPath), manifestPath);
                }
                catch (Exception e) when (e is InvalidDataException or IOException)
                {
                    continue; // a damaged package is not served; creating an experiment from it reports why
                }
                var files = Directory.EnumerateFiles(dir).Select(f => new FileInfo(f))
                    .Where(f => !f.Name.StartsWith('.') && !f.Name.EndsWith(".tmp", StringComparison.Ordinal) && ArtifactPaths.IsConfined(root, f.FullName))
                    .OrderBy(f => f.Name, StringComparer.Ordinal).Select(f => new ArtifactFileView(f.Name, f.Length)).ToList();
                index.TryAdd(manifest.ParametersSha256, new ArtifactView(manifest.ParametersSha256, Path.GetFileName(dir), manifest.ModelFamily,
                    manifest.ParameterCount, files));
            }
        }
        _byFingerprint = index;
    }
}

/// <summary>Artifact downloads by fingerprint: a client that lacks the package an experiment starts from fetches it here.</summary>
public static class ArtifactEndpoints
{
    public static RouteGroupBuilder MapArtifacts(this IEndpointRouteBuilder app)
    {
        var api = app.MapGroup("/api/artifacts").WithTags("Artifacts").RequireAuthorization(Policies.Observer);
        api.MapGet("/", (ArtifactIndex index) => TypedResults.Ok(index.List()))
            .WithSummary("The artifact packages in the artifacts directory, by fingerprint.");
        api.MapGet("/{fingerprint}", Get).WithSummary("One artifact package: its folder, family, parameter count and files.");
        api.MapGet("/{fingerprint}/files/{name}", Download).WithSummary("Downloads one file of an artifact package (range requests supported).");
        return api;
    }

    private static Results<Ok<ArtifactView>, NotFound<string>> Get(string fingerprint, ArtifactIndex index) =>
        index.Find(fingerprint) is { } a ? TypedResults.Ok(a) : TypedResults.NotFound($"No artifact package with fingerprint '{fingerprint}'.");

    private static Results<PhysicalFileHttpResult, NotFound<string>> Download(string fingerprint, string name, ArtifactIndex index)
    {
        if (index.Find(fingerprint) is not { } artifact)
            return TypedResults.NotFound($"No artifact package with fingerprint '{fingerprint}'.");
        // Only files the listing names are served: no path in the name can reach outside the package; and the
        // file is confined again now, in case a link replaced it since the listing.
        if (!artifact.Files.Any(f => f.Name == name))
            return TypedResults.NotFound($"Artifact package '{artifact.Folder}' has no file '{(name.Length > 80 ? name[..80] + "..." : name)}'.");
        var path = Path.GetFullPath(index.PathOf(artifact, name));
        if (!ArtifactPaths.IsConfined(index.Root, path))
            return TypedResults.NotFound($"Artifact package '{artifact.Folder}' has no file '{name}'.");
        KillSwitch.Reach(KillPoints.ArtifactDownload);
        return TypedResults.PhysicalFile(path, "application/octet-stream", name, enableRangeProcessing: true);
    }
}
