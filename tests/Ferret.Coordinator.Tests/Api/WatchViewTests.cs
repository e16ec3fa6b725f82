using System.Net.Http.Json;
using Ferret.Coordinator.Clients;
using Ferret.Coordinator.Experiments;
using Ferret.Coordinator.Persistence;
using Ferret.Core.Algorithms;
using Ferret.Core.Packets;
using Ferret.Core.Protocol;
using Ferret.Onnx.Export;
using Ferret.Tests;
using Microsoft.AspNetCore.SignalR.Client;
using Microsoft.Extensions.DependencyInjection;

namespace Ferret.Coordinator.Tests.Api;

/// <summary>What a dashboard fills itself from: the open round, the experiment's clients, the rejection log, the fingerprint.</summary>
public sealed class WatchViewTests : IAsyncLifetime, IDisposable
{
    private readonly CoordinatorFactory _factory = new(runRounds: false);
    private ExperimentView _experiment = null!;
    private ExperimentDescriptor _descriptor = null!;
    private EnrolResponse _a = null!;
    private EnrolResponse _b = null!;

    public async Task InitializeAsync()
    {
        ModelExporter.Export(new ModelSource.FromPreset("tiny-gpt2", 1), Path.Combine(_factory.ArtifactsDirectory, "tiny-gpt2"), overwrite: false);
        var admin = _factory.Admin();
        var created = await admin.PostAsJsonAsync("/api/experiments", new { name = "watch", algorithm = "ferret", artifact = "tiny-gpt2", rounds = 3, fraction = 1.0, candidateSeeds = 64 });
        _experiment = (await created.Content.ReadFromJsonAsync<ExperimentView>())!;
        _descriptor = Wire.Deserialize<ExperimentDescriptor>(await admin.GetByteArrayAsync($"/api/experiments/{_experiment.Id}/descriptor"));
        _a = await _factory.EnrolAsync("edge-a");
        _b = await _factory.EnrolAsync("edge-b");
    }

    public Task DisposeAsync() => Task.CompletedTask;

    public void Dispose() => _factory.Dispose();

    [Fact]
    public async Task The_views_show_the_open_round_who_delivered_who_failed_and_why_and_every_rejection()
    {
        var log = _factory.Services.GetRequiredService<IRoundLog>();
        var deadline = DateTimeOffset.UtcNow.AddMinutes(5);
        log.OpenRound(_experiment.Id, 1, DateTimeOffset.UtcNow, deadline, [_a.ClientId, _b.ClientId]);
        await using var observer = _factory.ConnectHub(CoordinatorFactory.AdminKey);
        var events = new HubRecorder(observer);
        await observer.StartAsync();
        await observer.InvokeAsync(RoundsProtocol.Subscribe, _experiment.Id);
        await using var a = _factory.ConnectHub(_a.Token);
        await using var b = _factory.ConnectHub(_b.Token);
        await a.StartAsync();
        await b.StartAsync();
        await a.InvokeAsync<JoinResult>(RoundsProtocol.Join, _experiment.Id, "{\"device\":\"Cuda:0\"}");
        await b.InvokeAsync<JoinResult>(RoundsProtocol.Join, _experiment.Id, null);
        Assert.True((await a.InvokeAsync<SubmitResult>(RoundsProtocol.SubmitUpdate, _experiment.Id, 1, TestPackets.Ferret(_descriptor, 1))).Accepted, "expected (await a.InvokeAsync<SubmitResult>(RoundsProtocol.SubmitUpdate, _experiment.Id, 1, TestPackets.Ferret(_descriptor, 1))).Accepted");
        var rejected = await b.InvokeAsync<SubmitResult>(RoundsProtocol.SubmitUpdate, _experiment.Id, 1, new byte[] { 0xc1 });
        await b.InvokeAsync(RoundsProtocol.ReportFailure, _experiment.Id, 1, "out of memory");

        // Live events name the client and say when.
        var received = await events.WaitFor<ClientEvent>(e => e.Kind == ClientEvent.Received);
        Assert.Equal("edge-a", received.ClientName);
        Assert.True(received.AtUtc > DateTimeOffset.UtcNow.AddMinutes(-1), $"the event says when it happened: {received.AtUtc:O}");
        var rejectedEvent = await events.WaitFor<ClientEvent>(e => e.Kind == ClientEvent.Rejected);

        var admin = _factory.Admin();
        var experiment = (await admin.GetFromJsonAsync<ExperimentView>($"/api/experiments/{_experiment.Id}"))!;
        var open = experiment.OpenRound;
        Assert.NotNull(open);
        Assert.Equal((1, 2, 1, 1), (open.Round, open.Assigned, open.Received, open.Failed));
        Assert.Equal(deadline.ToUnixTimeMilliseconds(), open.DeadlineUtc.ToUnixTimeMilliseconds());
        Assert.Equal("out of memory", open.Clients.Single(c => c.ClientId == _b.ClientId).Reason);
        Assert.Null(experiment.ModelFingerprint);

        var clients = (await admin.GetFromJsonAsync<ExperimentClientView[]>($"/api/experiments/{_experiment.Id}/clients"))!;
        var ca = clients.Single(c => c.Id == _a.ClientId);
        var cb = clients.Single(c => c.Id == _b.ClientId);
        Assert.Equal(("edge-a", "Cuda:0", true, 1, "Received", 1, 0), (ca.Name, ca.Device, ca.Online, ca.LastRound, ca.LastState, ca.Delivered, ca.Failures));
        Assert.Equal(("Failed", 1, 1, "out of memory", 1L), (cb.LastState, cb.Failures, cb.LastFailureRound, cb.LastFailureReason, cb.Rejections));

        var rejections = (await admin.GetFromJsonAsync<RejectionView[]>($"/api/experiments/{_experiment.Id}/rejections"))!;
        var rejection = Assert.Single(rejections);
        Assert.Equal(rejected.Reason, rejection.Reason);
        Assert.Equal(_b.ClientId, rejection.ClientId);
        // The log and the live event carry the same instant, so a page that has both counts the rejection once.
        Assert.Equal(rejectedEvent.AtUtc, rejection.AtUtc);

        // The round completes, both report the same fingerprint: the experiment shows it agreed; a disconnect shows offline.
        log.CompleteRound(_experiment.Id, 1, Wire.Serialize<GlobalUpdate>(new SeedCoefficientsUpdate { ExperimentId = _experiment.Id, Round = 1 }), null, null, DateTimeOffset.UtcNow);
        string fp = new('c', 64);
        await a.InvokeAsync<bool>(RoundsProtocol.ReportFingerprint, _experiment.Id, 1, fp);
        await b.InvokeAsync<bool>(RoundsProtocol.ReportFingerprint, _experiment.Id, 1, fp);
        await b.StopAsync();
        await events.WaitFor<ClientEvent>(e => e.Kind == ClientEvent.Left && e.ClientId == _b.ClientId);
        experiment = (await admin.GetFromJsonAsync<ExperimentView>($"/api/experiments/{_experiment.Id}"))!;
        Assert.Null(experiment.OpenRound);
        Assert.Equal(new ModelFingerprintView(1, fp, 2, true), experiment.ModelFingerprint);
        clients = (await admin.GetFromJsonAsync<ExperimentClientView[]>($"/api/experiments/{_experiment.Id}/clients"))!;
        Assert.False(clients.Single(c => c.Id == _b.ClientId).Online, "a client whose connection closed is offline");
        Assert.True(clients.All(c => c.FingerprintAgrees == true), "both reported the same fingerprint");
    }

    [Fact]
    public async Task Bad_limits_and_unknown_experiments_are_answered_plainly()
    {
        var admin = _factory.Admin();
        Assert.Equal(System.Net.HttpStatusCode.NotFound, (await admin.GetAsync("/api/experiments/exp-nope/clients")).StatusCode);
        var bad = await admin.GetAsync($"/api/experiments/{_experiment.Id}/rejections?limit=0");
        Assert.Equal(System.Net.HttpStatusCode.BadRequest, bad.StatusCode);
        Assert.Contains("limit", await bad.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        var algorithms = (await admin.GetFromJsonAsync<AlgorithmDefaultsView[]>("/api/algorithms"))!;
        var ferret = algorithms.Single(a => a.Name == "ferret");
        Assert.Equal((200, 10), (ferret.CandidateSeeds, ferret.LocalSteps));
        Assert.Equal(["ferret", "fedkseed", "fedzo", "fedavg"], algorithms.Select(a => a.Name));
    }
}
