using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using Ferret.Coordinator.Clients;
using Ferret.Coordinator.Experiments;
using Ferret.Coordinator.Persistence;
using Ferret.Core.Protocol;
using Ferret.Onnx.Export;
using Microsoft.AspNetCore.SignalR;
using Microsoft.AspNetCore.SignalR.Client;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;

namespace Ferret.Coordinator.Tests.Security;

/// <summary>Credentials, limits and confinement: what stands between the coordinator and whoever can reach its port.</summary>
public sealed class SecurityTests
{
    private static Dictionary<string, string> Settings(params (string Key, string Value)[] pairs) => pairs.ToDictionary(p => p.Key, p => p.Value);

    [Fact]
    public async Task Failed_authentications_and_enrolments_lock_an_address_out_with_429_even_for_a_valid_key()
    {
        using var factory = new CoordinatorFactory(runRounds: false, settings: Settings(("Ferret:FailedAuthenticationsPerMinute", "5")));
        Assert.Equal(HttpStatusCode.OK, (await factory.Admin().GetAsync("/api/clients")).StatusCode);
        for (int i = 0; i < 3; i++)
            Assert.Equal(HttpStatusCode.Unauthorized, (await factory.WithToken("wrong-" + i).GetAsync("/api/clients")).StatusCode);
        for (int i = 0; i < 2; i++)
        {
            var enrol = await factory.CreateClient().PostAsJsonAsync("/api/clients/enrol", new { enrolmentToken = "enrol_guess" + i, name = "x" });
            Assert.Equal(HttpStatusCode.Unauthorized, enrol.StatusCode);
        }
        var locked = await factory.Admin().GetAsync("/api/clients");
        Assert.Equal(HttpStatusCode.TooManyRequests, locked.StatusCode);
        Assert.True(locked.Headers.RetryAfter?.Delta > TimeSpan.Zero, "a 429 says when to come back");
        Assert.Equal(HttpStatusCode.TooManyRequests, (await factory.CreateClient().GetAsync("/health")).StatusCode);
    }

    [Fact]
    public async Task A_hub_connection_calling_faster_than_its_budget_is_refused_call_by_call_and_refills_with_time()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        using var factory = new CoordinatorFactory(runRounds: false, settings: Settings(("Ferret:HubCallsPerSecond", "2")), clock: time);
        ModelExporter.Export(new ModelSource.FromPreset("tiny-gpt2", 1), Path.Combine(factory.ArtifactsDirectory, "tiny-gpt2"), overwrite: false);
        var created = await factory.Admin().PostAsJsonAsync("/api/experiments", new { name = "limits", algorithm = "ferret", artifact = "tiny-gpt2", rounds = 1, fraction = 1.0 });
        var id = (await created.Content.ReadFromJsonAsync<ExperimentView>())!.Id;
        await using var hub = factory.ConnectHub(CoordinatorFactory.AdminKey);
        await using var other = factory.ConnectHub(CoordinatorFactory.AdminKey);
        await hub.StartAsync();
        await other.StartAsync();
        for (int i = 0; i < 4; i++)
            await hub.InvokeAsync("Subscribe", id); // a burst of twice the rate
        var refused = await Assert.ThrowsAsync<HubException>(() => hub.InvokeAsync("Subscribe", id));
        Assert.Contains("Too many calls", refused.Message);
        await other.InvokeAsync("Subscribe", id); // another connection has its own budget
        time.Advance(TimeSpan.FromSeconds(1));
        await hub.InvokeAsync("Subscribe", id);
        await hub.InvokeAsync("Subscribe", id);
        await Assert.ThrowsAsync<HubException>(() => hub.InvokeAsync("Subscribe", id));
    }

    [Fact]
    public async Task Every_body_is_bounded_and_names_labels_and_capabilities_are_too()
    {
        using var factory = new CoordinatorFactory(runRounds: false);
        var admin = factory.Admin();
        // A 5 MiB experiment name: refused before it is read, with or without a declared length.
        var huge = new { name = new string('n', 5 * 1024 * 1024), algorithm = "ferret", artifact = "x", rounds = 1, fraction = 1.0 };
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, (await admin.PostAsJsonAsync("/api/experiments", huge)).StatusCode);
        using var chunked = new StreamContent(new MemoryStream(Encoding.UTF8.GetBytes(System.Text.Json.JsonSerializer.Serialize(huge))));
        chunked.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        chunked.Headers.ContentLength = null;
        var status = (await admin.PostAsync("/api/experiments", chunked)).StatusCode;
        Assert.True(status is HttpStatusCode.RequestEntityTooLarge or HttpStatusCode.BadRequest, $"a chunked 5 MiB body answered {(int)status}");

        var longName = await admin.PostAsJsonAsync("/api/experiments", new { name = new string('n', 300), algorithm = "ferret", artifact = "x", rounds = 1, fraction = 1.0 });
        Assert.Contains("at most 200", await longName.Content.ReadAsStringAsync());
        var longLabel = await admin.PostAsJsonAsync("/api/enrolments", new EnrolmentRequest(new string('l', 300), null));
        Assert.Equal(HttpStatusCode.BadRequest, longLabel.StatusCode);
        var enrolment = (await (await admin.PostAsJsonAsync("/api/enrolments", new EnrolmentRequest(null, null))).Content.ReadFromJsonAsync<EnrolmentResponse>())!;
        var fat = await factory.CreateClient().PostAsJsonAsync("/api/clients/enrol", new { enrolmentToken = enrolment.Token, name = "fat", capabilities = new { notes = new string('c', 20 * 1024) } });
        Assert.Equal(HttpStatusCode.BadRequest, fat.StatusCode);
        Assert.Contains("capabilities", await fat.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Enrolment_tokens_expire_are_single_use_and_no_token_is_stored_in_the_clear()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        using var factory = new CoordinatorFactory(runRounds: false, clock: time);
        var admin = factory.Admin();
        var first = (await (await admin.PostAsJsonAsync("/api/enrolments", new EnrolmentRequest("lab", 10))).Content.ReadFromJsonAsync<EnrolmentResponse>())!;
        var second = (await (await admin.PostAsJsonAsync("/api/enrolments", new EnrolmentRequest("lab", 10))).Content.ReadFromJsonAsync<EnrolmentResponse>())!;
        var enrolled = await factory.CreateClient().PostAsJsonAsync("/api/clients/enrol", new { enrolmentToken = first.Token, name = "on-time" });
        Assert.Equal(HttpStatusCode.OK, enrolled.StatusCode);
        var client = (await enrolled.Content.ReadFromJsonAsync<EnrolResponse>())!;
        Assert.Equal(HttpStatusCode.Unauthorized, (await factory.CreateClient().PostAsJsonAsync("/api/clients/enrol", new { enrolmentToken = first.Token, name = "again" })).StatusCode);
        time.Advance(TimeSpan.FromMinutes(11));
        var late = await factory.CreateClient().PostAsJsonAsync("/api/clients/enrol", new { enrolmentToken = second.Token, name = "late" });
        Assert.Equal(HttpStatusCode.Unauthorized, late.StatusCode);
        Assert.Contains("expired", await late.Content.ReadAsStringAsync());

        // Neither the client token, nor an enrolment token, nor the admin key is anywhere in the database files.
        factory.Services.GetRequiredService<IClientRegistry>().ListClients();
        var bytes = Directory.GetFiles(Path.GetDirectoryName(factory.DatabasePath)!, "coordinator.db*").SelectMany(File.ReadAllBytes).ToArray();
        foreach (var secret in new[] { client.Token, first.Token, second.Token, CoordinatorFactory.AdminKey })
            Assert.True(bytes.AsSpan().IndexOf(Encoding.UTF8.GetBytes(secret)) < 0, $"a secret ({secret[..6]}...) is stored in the clear");
    }

    [Fact]
    public async Task Revoking_a_client_cuts_its_live_connection_and_frees_its_assignment()
    {
        using var factory = new CoordinatorFactory(runRounds: false);
        ModelExporter.Export(new ModelSource.FromPreset("tiny-gpt2", 1), Path.Combine(factory.ArtifactsDirectory, "tiny-gpt2"), overwrite: false);
        var created = await factory.Admin().PostAsJsonAsync("/api/experiments", new { name = "revoke", algorithm = "ferret", artifact = "tiny-gpt2", rounds = 1, fraction = 1.0 });
        var id = (await created.Content.ReadFromJsonAsync<ExperimentView>())!.Id;
        var client = await factory.EnrolAsync("doomed");
        var log = factory.Services.GetRequiredService<IRoundLog>();
        log.OpenRound(id, 1, DateTimeOffset.UtcNow, DateTimeOffset.UtcNow.AddMinutes(5), [client.ClientId]);
        await using var hub = factory.ConnectHub(client.Token);
        var closed = new TaskCompletionSource<Exception?>(TaskCreationOptions.RunContinuationsAsynchronously);
        hub.Closed += e =>
        {
            closed.TrySetResult(e);
            return Task.CompletedTask;
        };
        await hub.StartAsync();
        await hub.InvokeAsync<JoinResult>(RoundsProtocol.Join, id, null);

        Assert.Equal(HttpStatusCode.NoContent, (await factory.Admin().PostAsync($"/api/clients/{client.ClientId}/revoke", null)).StatusCode);
        await closed.Task.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(HubConnectionState.Disconnected, hub.State);
        var assignment = Assert.Single(log.GetAssignments(id, 1));
        Assert.Equal((AssignmentState.Failed, "client revoked"), (assignment.State, assignment.Reason));
        await using var again = factory.ConnectHub(client.Token);
        await Assert.ThrowsAnyAsync<HttpRequestException>(() => again.StartAsync());
    }

    [Fact]
    public async Task An_access_token_in_a_query_string_never_reaches_a_log_even_at_trace_level()
    {
        using var factory = new CoordinatorFactory(runRounds: false, settings: Settings(("Logging:LogLevel:Default", "Trace"), ("Logging:LogLevel:Microsoft.AspNetCore", "Trace")));
        var client = await factory.EnrolAsync("leaky");
        // What a browser's SignalR client does: the token in the query string of the negotiate request.
        var negotiate = await factory.CreateClient().PostAsync($"/hubs/rounds/negotiate?negotiateVersion=1&access_token={client.Token}", null);
        Assert.Equal(HttpStatusCode.OK, negotiate.StatusCode);
        await factory.CreateClient().PostAsync($"/hubs/rounds/negotiate?negotiateVersion=1&access_token=ferret_wrong{client.Token}", null);
        var lines = factory.Logs.Lines;
        Assert.Contains(lines, l => l.Contains("access_token=***", StringComparison.Ordinal)); // the request was logged, scrubbed
        Assert.DoesNotContain(lines, l => l.Contains(client.Token, StringComparison.Ordinal));
        Assert.DoesNotContain(lines, l => l.Contains(CoordinatorFactory.AdminKey, StringComparison.Ordinal));
    }

    [Fact]
    public async Task Without_any_appsettings_aspnetcore_request_logs_default_to_warning()
    {
        var empty = Directory.CreateTempSubdirectory("ferret-no-settings-");
        try
        {
            using var factory = new CoordinatorFactory(runRounds: false, contentRoot: empty.FullName);
            await factory.CreateClient().GetAsync("/health");
            await factory.Admin().GetAsync("/api/clients");
            Assert.DoesNotContain(factory.Logs.Lines, l => l.StartsWith("Microsoft.AspNetCore.Hosting.Diagnostics Information", StringComparison.Ordinal));
            Assert.Contains(factory.Logs.Lines, l => l.StartsWith("Microsoft.Hosting.Lifetime Information", StringComparison.Ordinal)); // the rest still logs
        }
        finally
        {
            empty.Delete(recursive: true);
        }
    }

    [Fact]
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    public async Task The_admin_key_comes_from_a_file_only_its_owner_can_read()
    {
        var dir = Directory.CreateTempSubdirectory("ferret-key-");
        try
        {
            var keyFile = Path.Combine(dir.FullName, "admin.key");
            await File.WriteAllTextAsync(keyFile, "key-from-a-file-0123456789\n");
            File.SetUnixFileMode(keyFile, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            using (var factory = new CoordinatorFactory(runRounds: false, settings: Settings(("Ferret:AdminKey", ""), ("Ferret:AdminKeyFile", keyFile))))
            {
                Assert.Equal(HttpStatusCode.OK, (await factory.WithToken("key-from-a-file-0123456789").GetAsync("/api/clients")).StatusCode);
                Assert.Equal(HttpStatusCode.Unauthorized, (await factory.Admin().GetAsync("/api/clients")).StatusCode);
            }
            File.SetUnixFileMode(keyFile, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
            using var exposed = new CoordinatorFactory(runRounds: false, settings: Settings(("Ferret:AdminKey", ""), ("Ferret:AdminKeyFile", keyFile)));
            var e = Assert.ThrowsAny<Exception>(() => exposed.CreateClient());
            Assert.Contains("readable by other users", e.ToString());
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    [Fact]
    public async Task Artifact_paths_stay_inside_the_artifacts_folder_whatever_the_encoding_or_the_links()
    {
        using var factory = new CoordinatorFactory(runRounds: false);
        var package = ModelExporter.Export(new ModelSource.FromPreset("tiny-gpt2", 1), Path.Combine(factory.ArtifactsDirectory, "tiny-gpt2"), overwrite: false);
        var outside = Directory.CreateTempSubdirectory("ferret-outside-");
        try
        {
            var secret = Path.Combine(outside.FullName, "secret.txt");
            await File.WriteAllTextAsync(secret, "outside the artifacts folder");
            File.CreateSymbolicLink(Path.Combine(package.Directory, "linked.txt"), secret);
            Directory.CreateSymbolicLink(Path.Combine(factory.ArtifactsDirectory, "linked-package"), package.Directory);
            ModelExporter.Export(new ModelSource.FromPreset("tiny-gpt2", 2), Path.Combine(outside.FullName, "elsewhere"), overwrite: false);
            Directory.CreateSymbolicLink(Path.Combine(factory.ArtifactsDirectory, "escape"), Path.Combine(outside.FullName, "elsewhere"));

            var admin = factory.Admin();
            string fp = package.Manifest.ParametersSha256;
            var view = (await admin.GetFromJsonAsync<Artifacts.ArtifactView>($"/api/artifacts/{fp}"))!;
            Assert.DoesNotContain(view.Files, f => f.Name == "linked.txt");
            foreach (var name in new[] { "linked.txt", "..%2F..%2Fcoordinator.db", "..%252F..%252Fcoordinator.db", "%2e%2e%2fcoordinator.db", "..%5Ccoordinator.db", "%252e%252e%252fcoordinator.db" })
            {
                var response = await admin.GetAsync($"/api/artifacts/{fp}/files/{name}");
                Assert.True(response.StatusCode == HttpStatusCode.NotFound, $"{name} answered {(int)response.StatusCode}");
            }
            // A package linked in from outside is neither listed nor usable for an experiment; one linked from inside is fine.
            var listed = (await admin.GetFromJsonAsync<Artifacts.ArtifactView[]>("/api/artifacts"))!;
            Assert.DoesNotContain(listed, a => a.Folder == "escape");
            foreach (var artifact in new[] { "escape", "../tiny-gpt2", "%2e%2e", outside.FullName })
            {
                var refused = await admin.PostAsJsonAsync("/api/experiments", new { name = "x", algorithm = "ferret", artifact, rounds = 1, fraction = 1.0 });
                Assert.True(refused.StatusCode == HttpStatusCode.BadRequest, $"artifact '{artifact}' answered {(int)refused.StatusCode}");
            }
            var inside = await admin.PostAsJsonAsync("/api/experiments", new { name = "x", algorithm = "ferret", artifact = "linked-package", rounds = 1, fraction = 1.0 });
            Assert.Equal(HttpStatusCode.Created, inside.StatusCode);
        }
        finally
        {
            outside.Delete(recursive: true);
        }
    }
}
