using System.Formats.Tar;
using System.IO.Compression;
using System.Net;
using System.Net.Http.Json;
using Ferret.Coordinator.Experiments;
using Ferret.Coordinator.Persistence;
using Ferret.Core.Algorithms;
using Ferret.Core.Packets;
using Ferret.Core.Parameters;
using Ferret.Onnx.Artifacts;
using Ferret.Onnx.Checkpoints;
using Ferret.Onnx.Export;
using Ferret.Tests;
using Microsoft.Extensions.DependencyInjection;

namespace Ferret.Coordinator.Tests.Api;

/// <summary>GET /api/experiments/{id}/model: the global model at a round, replayed from the log, as a Hugging Face folder in a tar or zip.</summary>
public sealed class ModelEndpointTests : IAsyncLifetime, IDisposable
{
    // Rounds are written to the log by hand here, so the engine stays off.
    private readonly CoordinatorFactory _factory = new(runRounds: false);
    private readonly TempDirectory _out = new();
    private ArtifactPackage _package = null!;
    private ExperimentDescriptor _descriptor = null!;
    private string _clientId = "";
    private string _clientToken = "";
    private string _roundOne = "";

    private IRoundLog Log => _factory.Services.GetRequiredService<IRoundLog>();

    public async Task InitializeAsync()
    {
        _package = ModelExporter.Export(new ModelSource.FromPreset("tiny-gpt2", 1), Path.Combine(_factory.ArtifactsDirectory, "tiny-gpt2"), overwrite: false);
        var created = await _factory.Admin().PostAsJsonAsync("/api/experiments", new { name = "model", algorithm = "ferret", artifact = "tiny-gpt2", rounds = 3, fraction = 1.0, experimentSeed = 5UL, candidateSeeds = 64 });
        var view = (await created.Content.ReadFromJsonAsync<ExperimentView>())!;
        _descriptor = Wire.Deserialize<ExperimentDescriptor>(await _factory.Admin().GetByteArrayAsync($"/api/experiments/{view.Id}/descriptor"));
        var client = await _factory.EnrolAsync("edge-a");
        (_clientId, _clientToken) = (client.ClientId, client.Token);

        // Round 1 completes with one client's packet; round 2 is abandoned; round 3 is open.
        var aggregator = FederatedAlgorithms.Create(_descriptor, _descriptor.Blocks(_package.Layout));
        var now = DateTimeOffset.UtcNow;
        Log.OpenRound(_descriptor.Id, 1, now, now.AddMinutes(5), [_clientId]);
        var update = aggregator.Aggregate(1, [Wire.Deserialize<ClientUpdate>(TestPackets.Ferret(_descriptor, 1))], []);
        Log.CompleteRound(_descriptor.Id, 1, Wire.Serialize(update), aggregator.ExportState(), null, now);
        Log.OpenRound(_descriptor.Id, 2, now, now.AddMinutes(5), [_clientId]);
        Log.AbandonRound(_descriptor.Id, 2, "no packet arrived before the deadline", now);
        Log.OpenRound(_descriptor.Id, 3, now, now.AddMinutes(5), [_clientId]);
        _roundOne = ModelReplay.Replay(_descriptor, _descriptor.Blocks(_package.Layout), _package.LoadParameters(), [update]).Fingerprint;
        Log.RecordFingerprint(new FingerprintRecord(_descriptor.Id, 1, _clientId, _roundOne, now));
    }

    public Task DisposeAsync() => Task.CompletedTask;

    public void Dispose()
    {
        _factory.Dispose();
        _out.Dispose();
    }

    private string FingerprintOf(string folder)
    {
        var flat = new float[_package.Layout.TotalLength];
        using var weights = SafeTensorsReader.Open(Path.Combine(folder, HuggingFaceFolder.WeightsFile));
        foreach (var t in _package.Layout.Tensors)
            weights.ReadFloat32(t.Name, flat.AsSpan((int)t.Offset, (int)t.Length));
        return ModelFingerprint.Compute(flat);
    }

    [Fact]
    public async Task The_last_closed_round_streams_as_a_tar_of_a_hugging_face_folder_whose_weights_are_the_replayed_model()
    {
        using var response = await _factory.Admin().GetAsync($"/api/experiments/{_descriptor.Id}/model");
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"status {response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
        Assert.True(response.Headers.GetValues(ModelEndpoint.FingerprintHeader).Single() == _roundOne, "the header names the replayed fingerprint");
        Assert.True(response.Headers.GetValues(ModelEndpoint.RoundHeader).Single() == "2", "round 3 is open, so round 2 (abandoned: round 1's model) is the last closed");
        Assert.True(response.Content.Headers.ContentType?.MediaType == "application/x-tar", $"content type {response.Content.Headers.ContentType}");
        await TarFile.ExtractToDirectoryAsync(await response.Content.ReadAsStreamAsync(), _out.Path, overwriteFiles: false);
        var folder = Path.Combine(_out.Path, $"{_descriptor.Id}-round-2");
        foreach (var file in new[] { "config.json", "model.safetensors", "tokenizer.json", "generation_config.json" })
            Assert.True(File.Exists(Path.Combine(folder, file)), $"{file} is in the archive");
        Assert.True(FingerprintOf(folder) == _roundOne, "model.safetensors holds the replayed model");
        Assert.True(Directory.GetDirectories(Path.GetTempPath(), "ferret-model-*").All(d => !d.Contains(_descriptor.Id, StringComparison.Ordinal)), "the temporary folder is gone");
    }

    [Fact]
    public async Task Round_zero_is_the_start_and_zip_is_offered_too()
    {
        using var response = await _factory.Admin().GetAsync($"/api/experiments/{_descriptor.Id}/model?round=0&format=ZIP");
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"status {response.StatusCode}");
        using var zip = new ZipArchive(await response.Content.ReadAsStreamAsync(), ZipArchiveMode.Read);
        Assert.True(zip.Entries.Any(e => e.FullName == $"{_descriptor.Id}-round-0/config.json"), $"entries: {string.Join(", ", zip.Entries.Select(e => e.FullName))}");
        zip.ExtractToDirectory(_out.Path);
        Assert.True(FingerprintOf(Path.Combine(_out.Path, $"{_descriptor.Id}-round-0")) == _package.Manifest.ParametersSha256, "round 0 is the starting model");
    }

    [Fact]
    public async Task Bad_requests_are_refused_with_a_reason()
    {
        var admin = _factory.Admin();
        var open = await admin.GetAsync($"/api/experiments/{_descriptor.Id}/model?round=3");
        Assert.True(open.StatusCode == HttpStatusCode.BadRequest, $"an open round: {open.StatusCode}");
        Assert.Contains("not closed", await open.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        var format = await admin.GetAsync($"/api/experiments/{_descriptor.Id}/model?format=rar");
        Assert.True(format.StatusCode == HttpStatusCode.BadRequest, $"format rar: {format.StatusCode}");
        Assert.True((await admin.GetAsync("/api/experiments/exp-nope/model")).StatusCode == HttpStatusCode.NotFound, "an unknown experiment is 404");
        Assert.True((await _factory.WithToken(_clientToken).GetAsync($"/api/experiments/{_descriptor.Id}/model")).StatusCode == HttpStatusCode.Forbidden,
            "a client token may not download the model (admin only)");
    }

    [Fact]
    public async Task A_participant_reporting_another_fingerprint_stops_the_download()
    {
        var other = await _factory.EnrolAsync("edge-b");
        Log.RecordFingerprint(new FingerprintRecord(_descriptor.Id, 1, other.ClientId, new string('0', 64), DateTimeOffset.UtcNow));
        var response = await _factory.Admin().GetAsync($"/api/experiments/{_descriptor.Id}/model");
        Assert.True(response.StatusCode == HttpStatusCode.Conflict, $"status {response.StatusCode}");
        Assert.Contains(new string('0', 64), await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }
}
