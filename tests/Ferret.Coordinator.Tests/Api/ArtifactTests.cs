using System.Net;
using System.Net.Http.Json;
using Ferret.Coordinator.Artifacts;
using Ferret.Onnx.Artifacts;
using Ferret.Onnx.Export;

namespace Ferret.Coordinator.Tests.Api;

/// <summary>Artifact packages served by fingerprint to clients that lack them.</summary>
public sealed class ArtifactTests : IDisposable
{
    private readonly CoordinatorFactory _factory = new();
    private readonly ArtifactPackage _package;

    public ArtifactTests() =>
        _package = ModelExporter.Export(new ModelSource.FromPreset("tiny-gpt2", 1), Path.Combine(_factory.ArtifactsDirectory, "tiny-gpt2"), overwrite: false);

    public void Dispose() => _factory.Dispose();

    [Fact]
    public async Task A_client_lists_and_downloads_a_package_by_fingerprint_byte_for_byte()
    {
        var client = await _factory.EnrolAsync("edge");
        var http = _factory.WithToken(client.Token);
        string fingerprint = _package.Manifest.ParametersSha256;
        var listed = Assert.Single((await http.GetFromJsonAsync<ArtifactView[]>("/api/artifacts"))!);
        Assert.Equal(fingerprint, listed.Fingerprint);
        Assert.Equal("tiny-gpt2", listed.Folder);
        var view = (await http.GetFromJsonAsync<ArtifactView>($"/api/artifacts/{fingerprint}"))!;
        Assert.Contains(view.Files, f => f.Name == ArtifactManifest.FileName);
        foreach (var file in view.Files)
        {
            var bytes = await http.GetByteArrayAsync($"/api/artifacts/{fingerprint}/files/{file.Name}");
            Assert.Equal(await File.ReadAllBytesAsync(Path.Combine(_package.Directory, file.Name)), bytes);
            Assert.Equal(file.Bytes, bytes.LongLength);
        }
    }

    [Fact]
    public async Task Unknown_fingerprints_files_outside_the_package_and_anonymous_callers_are_refused()
    {
        var admin = _factory.Admin();
        string fingerprint = _package.Manifest.ParametersSha256;
        Assert.Equal(HttpStatusCode.NotFound, (await admin.GetAsync($"/api/artifacts/{new string('0', 64)}")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await admin.GetAsync($"/api/artifacts/{fingerprint}/files/..%2F..%2Fcoordinator.db")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await admin.GetAsync($"/api/artifacts/{fingerprint}/files/nothing.bin")).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await _factory.CreateClient().GetAsync("/api/artifacts")).StatusCode);
    }
}
