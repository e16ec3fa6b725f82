using System.Net;
using System.Net.Http.Json;
using Ferret.Coordinator.Clients;
using Ferret.Coordinator.Experiments;
using Ferret.Coordinator.Persistence;
using Ferret.Core.Algorithms;
using Ferret.Core.Packets;
using Ferret.Onnx.Export;
using Microsoft.AspNetCore.SignalR.Client;
using Microsoft.Extensions.DependencyInjection;

namespace Ferret.Coordinator.Tests.Api;

public sealed class ExperimentTests : IDisposable
{
    private readonly CoordinatorFactory _factory = new();

    public ExperimentTests() =>
        ModelExporter.Export(new ModelSource.FromPreset("tiny-gpt2", 1), Path.Combine(_factory.ArtifactsDirectory, "tiny-gpt2"), overwrite: false);

    public void Dispose() => _factory.Dispose();

    private static object Request(string algorithm = "ferret", string artifact = "tiny-gpt2", int rounds = 5, double fraction = 0.5) =>
        new { name = "demo", algorithm, artifact, rounds, fraction, experimentSeed = 42UL, candidateSeeds = 64 };

    private async Task<ExperimentView> CreateAsync()
    {
        var response = await _factory.Admin().PostAsJsonAsync("/api/experiments", Request());
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        return (await response.Content.ReadFromJsonAsync<ExperimentView>())!;
    }

    [Fact]
    public async Task Unset_settings_come_from_the_package_and_the_status_shows_them_and_the_connected_clients()
    {
        var created = await CreateAsync();
        // A preset's manifest recommends the settings measured on it; the request set only K = 64.
        Assert.True(created.Settings is { LocalLearningRate: 0.05, ServerLearningRate: 3, CandidateSeeds: 64, LocalSteps: 10 },
            $"effective settings {System.Text.Json.JsonSerializer.Serialize(created.Settings)}");
        var status = await _factory.Admin().GetStringAsync($"/api/experiments/{created.Id}");
        Assert.True(status.Contains("\"localLearningRate\":0.05", StringComparison.Ordinal) && status.Contains("\"distribution\":\"Uniform\"", StringComparison.Ordinal),
            $"the status JSON carries the settings, camelCase with enum names: {status}");
        Assert.True(status.Contains("\"connectedClients\":0", StringComparison.Ordinal), $"nobody connected yet: {status}");
        var client = await _factory.EnrolAsync("edge-a");
        await using var hub = _factory.ConnectHub(client.Token);
        await hub.StartAsync();
        await hub.InvokeAsync<Core.Protocol.JoinResult>(Core.Protocol.RoundsProtocol.Join, created.Id, null);
        var after = await _factory.Admin().GetFromJsonAsync<ExperimentView>($"/api/experiments/{created.Id}");
        Assert.True(after!.ConnectedClients == 1, $"one joined client is connected: {after.ConnectedClients}");
    }

    [Fact]
    public void Relative_paths_resolve_against_the_folder_the_coordinator_started_in_and_the_round_log_defaults_outside_it()
    {
        var options = new CoordinatorOptions { ArtifactsDirectory = "artifacts" };
        options.ResolvePaths("/srv/ferret");
        Assert.True(options.ArtifactsDirectory == "/srv/ferret/artifacts", $"artifacts: {options.ArtifactsDirectory}");
        Assert.True(options.DatabasePath == CoordinatorOptions.DefaultDatabasePath && !options.DatabasePath.StartsWith("/srv/ferret", StringComparison.Ordinal),
            $"the default round log is in the user's data folder: {options.DatabasePath}");
        var named = new CoordinatorOptions { DatabasePath = "logs/round.db", ArtifactsDirectory = "/abs/artifacts" };
        named.ResolvePaths("/srv/ferret");
        Assert.True((named.DatabasePath, named.ArtifactsDirectory) == ("/srv/ferret/logs/round.db", "/abs/artifacts"), $"{named.DatabasePath}, {named.ArtifactsDirectory}");
    }

    [Fact]
    public async Task An_experiment_can_name_its_artifact_package_by_fingerprint()
    {
        var fingerprint = Onnx.Artifacts.ArtifactPackage.Open(Path.Combine(_factory.ArtifactsDirectory, "tiny-gpt2")).Manifest.ParametersSha256;
        var response = await _factory.Admin().PostAsJsonAsync("/api/experiments", Request(artifact: fingerprint));
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        Assert.Equal(fingerprint, (await response.Content.ReadFromJsonAsync<ExperimentView>())!.ArtifactFingerprint);
        var unknown = await _factory.Admin().PostAsJsonAsync("/api/experiments", Request(artifact: new string('0', 64)));
        Assert.Equal(HttpStatusCode.BadRequest, unknown.StatusCode);
        Assert.Contains("No artifact package with fingerprint", await unknown.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task An_experiment_is_created_from_an_artifact_package_and_its_descriptor_served()
    {
        var created = await CreateAsync();
        Assert.Equal("ferret", created.Algorithm);
        Assert.Equal(64, created.CandidateSeeds);
        var admin = _factory.Admin();
        var list = await admin.GetFromJsonAsync<ExperimentView[]>("/api/experiments");
        Assert.Equal(created.Id, Assert.Single(list!).Id);
        var bytes = await admin.GetByteArrayAsync($"/api/experiments/{created.Id}/descriptor");
        var descriptor = Wire.Deserialize<ExperimentDescriptor>(bytes);
        Assert.Equal(64, descriptor.CandidateSeeds.Length);
        Assert.Equal(created.Blocks, descriptor.BlockLengths.Length);
        Assert.Equal(created.ArtifactFingerprint, descriptor.ArtifactFingerprint);
        var one = await admin.GetFromJsonAsync<ExperimentView>($"/api/experiments/{created.Id}");
        Assert.Empty(one!.RoundLog!);
    }

    [Fact]
    public async Task Stopping_twice_is_a_conflict_and_unknown_experiments_are_not_found()
    {
        var created = await CreateAsync();
        var admin = _factory.Admin();
        Assert.Equal(HttpStatusCode.NoContent, (await admin.PostAsync($"/api/experiments/{created.Id}/stop", null)).StatusCode);
        Assert.Equal(HttpStatusCode.Conflict, (await admin.PostAsync($"/api/experiments/{created.Id}/stop", null)).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await admin.GetAsync("/api/experiments/exp-nope")).StatusCode);
    }

    [Fact]
    public async Task Catch_up_returns_the_completed_global_updates_after_a_round()
    {
        var created = await CreateAsync();
        var log = _factory.Services.GetRequiredService<IRoundLog>();
        var clients = _factory.Services.GetRequiredService<IClientRegistry>();
        clients.AddEnrolmentToken("e", "x", DateTimeOffset.UtcNow, DateTimeOffset.UtcNow.AddHours(1));
        clients.RedeemEnrolmentToken("e", new ClientRecord("c1", "c1", DateTimeOffset.UtcNow, null, false), "t", DateTimeOffset.UtcNow);
        for (int r = 1; r <= 3; r++)
        {
            log.OpenRound(created.Id, r, DateTimeOffset.UtcNow, DateTimeOffset.UtcNow.AddMinutes(1), ["c1"]);
            var update = new SeedCoefficientsUpdate { ExperimentId = created.Id, Round = r, SeedIndices = [r], Blocks = [0], Coefficients = [0.5f * r] };
            log.CompleteRound(created.Id, r, Wire.Serialize<GlobalUpdate>(update), null, null, DateTimeOffset.UtcNow);
        }
        var bytes = await _factory.Admin().GetByteArrayAsync($"/api/experiments/{created.Id}/updates?after=1");
        var updates = Wire.Deserialize<GlobalUpdate[]>(bytes);
        Assert.Equal([2, 3], updates.Select(u => u.Round));
        Assert.Equal(1.5f, ((SeedCoefficientsUpdate)updates[1]).Coefficients[0]);
        var view = await _factory.Admin().GetFromJsonAsync<ExperimentView>($"/api/experiments/{created.Id}");
        Assert.Equal(3, view!.RoundLog!.Count);
        Assert.All(view.RoundLog!, r => Assert.Equal("Completed", r.State));
    }

    [Theory]
    [InlineData("sgd", "tiny-gpt2", 5, 0.5, "algorithm")]
    [InlineData("ferret", "missing-model", 5, 0.5, "does not exist")]
    [InlineData("ferret", "../etc", 5, 0.5, "artifact")]
    [InlineData("ferret", "tiny-gpt2", 0, 0.5, "rounds")]
    [InlineData("ferret", "tiny-gpt2", 5, 1.5, "fraction")]
    public async Task Bad_requests_get_problem_details_naming_the_field(string algorithm, string artifact, int rounds, double fraction, string expected)
    {
        var response = await _factory.Admin().PostAsJsonAsync("/api/experiments", Request(algorithm, artifact, rounds, fraction));
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Contains(expected, await response.Content.ReadAsStringAsync());
        Assert.Empty(_factory.Services.GetRequiredService<IRoundLog>().ListExperiments());
    }

    [Fact]
    public async Task Clients_may_read_experiments_but_not_create_or_stop_them()
    {
        var created = await CreateAsync();
        var admin = _factory.Admin();
        var enrolment = (await (await admin.PostAsJsonAsync("/api/enrolments", new EnrolmentRequest(null, null))).Content.ReadFromJsonAsync<EnrolmentResponse>())!;
        var client = (await (await _factory.CreateClient().PostAsJsonAsync("/api/clients/enrol", new { enrolmentToken = enrolment.Token, name = "edge" })).Content.ReadFromJsonAsync<EnrolResponse>())!;
        var asClient = _factory.WithToken(client.Token);
        Assert.Equal(HttpStatusCode.OK, (await asClient.GetAsync($"/api/experiments/{created.Id}/descriptor")).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await asClient.PostAsJsonAsync("/api/experiments", Request())).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await asClient.PostAsync($"/api/experiments/{created.Id}/stop", null)).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await _factory.CreateClient().GetAsync("/api/experiments")).StatusCode);
    }
}
