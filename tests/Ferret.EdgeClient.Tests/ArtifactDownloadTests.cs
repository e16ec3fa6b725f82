using System.Net;
using System.Text;
using System.Text.Json;
using Ferret.Onnx.Artifacts;
using Ferret.Onnx.Export;
using Microsoft.AspNetCore.SignalR;
using Microsoft.AspNetCore.SignalR.Client;

namespace Ferret.EdgeClient.Tests;

/// <summary>
/// The edge client downloads a package from a coordinator it does not trust beyond the fingerprint: names
/// are plain, sizes as announced, every file as the manifest hashes it; transient failures are retried.
/// </summary>
public sealed class ArtifactDownloadTests : IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("ferret-download-");
    private readonly ArtifactPackage _package;

    public ArtifactDownloadTests() =>
        _package = ModelExporter.Export(new ModelSource.FromPreset("tiny-gpt2", 1), Path.Combine(_dir.FullName, "served", "tiny-gpt2"), overwrite: false);

    public void Dispose() => _dir.Delete(recursive: true);

    private string Fingerprint => _package.Manifest.ParametersSha256;

    /// <summary>A coordinator serving the package's files; <paramref name="tamper"/> may change the listing and the bytes.</summary>
    private sealed class FakeCoordinator(ArtifactPackage package, Func<HttpRequestMessage, HttpResponseMessage?>? intercept = null,
        Func<List<(string Name, long Bytes)>, List<(string Name, long Bytes)>>? listing = null, Func<string, byte[], byte[]>? content = null) : HttpMessageHandler
    {
        public int Requests { get; private set; }

        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            Requests++;
            if (intercept?.Invoke(request) is { } early)
                return Task.FromResult(early);
            string path = request.RequestUri!.AbsolutePath;
            string fp = package.Manifest.ParametersSha256;
            if (path == $"/api/artifacts/{fp}")
            {
                var files = Directory.GetFiles(package.Directory).Select(f => (Path.GetFileName(f), new FileInfo(f).Length)).ToList();
                files = listing?.Invoke(files) ?? files;
                var json = JsonSerializer.Serialize(new { fingerprint = fp, folder = "tiny-gpt2", files = files.Select(f => new { name = f.Item1, bytes = f.Item2 }) });
                return Task.FromResult(new HttpResponseMessage(HttpStatusCode.OK) { Content = new StringContent(json, Encoding.UTF8, "application/json") });
            }
            string prefix = $"/api/artifacts/{fp}/files/";
            if (path.StartsWith(prefix, StringComparison.Ordinal))
            {
                string name = Uri.UnescapeDataString(path[prefix.Length..]);
                var file = Path.Combine(package.Directory, name);
                var bytes = File.Exists(file) ? File.ReadAllBytes(file) : [];
                bytes = content?.Invoke(name, bytes) ?? bytes;
                return Task.FromResult(new HttpResponseMessage(HttpStatusCode.OK) { Content = new ByteArrayContent(bytes) });
            }
            return Task.FromResult(new HttpResponseMessage(HttpStatusCode.NotFound));
        }
    }

    private async Task<string> DownloadAsync(FakeCoordinator coordinator, List<string>? said = null)
    {
        using var http = new HttpClient(coordinator) { BaseAddress = new Uri("http://coordinator.test/") };
        var target = Path.Combine(_dir.FullName, "device", "tiny-gpt2");
        await ArtifactDownload.DownloadAsync(http, Fingerprint, target, s => said?.Add(s), CancellationToken.None);
        return target;
    }

    private string[] DeviceFolder() => Directory.Exists(Path.Combine(_dir.FullName, "device"))
        ? Directory.GetFileSystemEntries(Path.Combine(_dir.FullName, "device")).Select(p => Path.GetFileName(p)).ToArray()
        : [];

    [Fact]
    public async Task An_honest_coordinator_yields_the_package_byte_for_byte_with_every_file_checked()
    {
        Assert.NotNull(_package.Manifest.FileSha256);
        var target = await DownloadAsync(new FakeCoordinator(_package));
        var downloaded = ArtifactPackage.Open(target);
        Assert.Equal(Fingerprint, downloaded.Manifest.ParametersSha256);
        Assert.Equal(_package.Manifest.FileSha256!.Keys.Order(), downloaded.VerifyFiles()!.Order());
        Assert.Equal(["tiny-gpt2"], DeviceFolder());
    }

    [Theory]
    [InlineData("../evil.txt")]
    [InlineData("..")]
    [InlineData("sub/evil.txt")]
    [InlineData("..\\evil.txt")]
    [InlineData("/etc/evil.txt")]
    [InlineData(".hidden")]
    public async Task A_listing_that_names_a_path_instead_of_a_file_is_refused_and_nothing_is_written(string name)
    {
        var hostile = new FakeCoordinator(_package, listing: files => [.. files, (name, 4)], content: (n, b) => n == name ? "evil"u8.ToArray() : b);
        var e = await Assert.ThrowsAsync<InvalidDataException>(() => DownloadAsync(hostile));
        Assert.Contains("not a plain file name", e.Message);
        Assert.Empty(DeviceFolder());
        Assert.False(File.Exists(Path.Combine(_dir.FullName, "evil.txt")), "a file was written outside the staging folder");
    }

    [Fact]
    public async Task A_file_that_does_not_match_the_manifests_hash_is_refused()
    {
        var tampered = new FakeCoordinator(_package, content: (name, bytes) =>
        {
            if (name != _package.Manifest.Train.File)
                return bytes;
            var copy = (byte[])bytes.Clone();
            copy[copy.Length / 2] ^= 0x40;
            return copy;
        });
        var e = await Assert.ThrowsAsync<InvalidDataException>(() => DownloadAsync(tampered));
        Assert.Contains("SHA-256", e.Message);
        Assert.Contains(_package.Manifest.Train.File, e.Message);
        Assert.Empty(DeviceFolder());
    }

    [Fact]
    public async Task A_file_longer_than_announced_is_cut_off_and_refused()
    {
        var endless = new FakeCoordinator(_package, content: (name, bytes) => name == "manifest.json" ? bytes : [.. bytes, .. new byte[1 << 20]]);
        var e = await Assert.ThrowsAsync<InvalidDataException>(() => DownloadAsync(endless));
        Assert.Contains("longer than", e.Message);
        Assert.Empty(DeviceFolder());
    }

    [Fact]
    public async Task Transient_failures_are_retried_until_the_download_succeeds()
    {
        int failures = 0;
        var flaky = new FakeCoordinator(_package, intercept: request =>
        {
            if (failures >= 3)
                return null;
            failures++;
            return failures == 2 ? throw new HttpRequestException("connection refused") : new HttpResponseMessage(HttpStatusCode.ServiceUnavailable);
        });
        var said = new List<string>();
        var target = await DownloadAsync(flaky, said);
        Assert.Equal(3, failures);
        Assert.Equal(Fingerprint, ArtifactPackage.Open(target).Manifest.ParametersSha256);
        Assert.Contains(said, s => s.Contains("succeeded after 4 attempts", StringComparison.Ordinal));
    }

    [Fact]
    public void Refusals_end_the_client_and_everything_else_is_waited_out()
    {
        var ct = CancellationToken.None;
        Assert.True(Transient.Is(new HttpRequestException("refused"), ct), "a refused connection is transient");
        Assert.True(Transient.Is(new HttpRequestException("busy", null, HttpStatusCode.ServiceUnavailable), ct), "503 is transient");
        Assert.True(Transient.Is(new HttpRequestException("slow down", null, HttpStatusCode.TooManyRequests), ct), "429 is transient");
        Assert.True(Transient.Is(new InvalidOperationException("The 'InvokeCoreAsync' method cannot be called if the connection is not active"), ct), "a hub call on a dropped connection is transient");
        Assert.True(Transient.Is(new TaskCanceledException("Invocation canceled due to the underlying connection being closed."), ct), "an invocation cancelled by a closed connection is transient");
        Assert.True(Transient.Is(new HubException("Too many calls: at most 20 per second on one connection."), ct), "the hub's rate limit is transient");
        Assert.False(Transient.Is(new HttpRequestException("who are you", null, HttpStatusCode.Unauthorized), ct), "401 is final");
        Assert.False(Transient.Is(new HttpRequestException("no such thing", null, HttpStatusCode.NotFound), ct), "404 is final");
        Assert.False(Transient.Is(new HubException("No experiment 'exp-x'."), ct), "a hub error about the request itself is final");
        using var cancelled = new CancellationTokenSource();
        cancelled.Cancel();
        Assert.False(Transient.Is(new OperationCanceledException(cancelled.Token), cancelled.Token), "the caller's own cancellation is final");
        // The hub's reconnect stops only for a refused token.
        Assert.Null(Backoff.Default.NextRetryDelay(new RetryContext { PreviousRetryCount = 3, RetryReason = new HttpRequestException("revoked", null, HttpStatusCode.Unauthorized) }));
        Assert.NotNull(Backoff.Default.NextRetryDelay(new RetryContext { PreviousRetryCount = 1000, RetryReason = new HttpRequestException("down") }));
        Assert.InRange(Backoff.Default.Delay(1000).TotalSeconds, 7.5, 15);
    }
}
