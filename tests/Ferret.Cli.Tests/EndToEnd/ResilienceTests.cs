namespace Ferret.Cli.Tests.EndToEnd;

/// <summary>
/// An edge client keeps going from its first second: a coordinator that is down when the client starts, or
/// that dies while the client connects and joins, only delays it; a revoked client is cut off and ends with
/// one line.
/// </summary>
[Collection(SharedMachine.Name)]
public sealed class ResilienceTests
{
    [Fact]
    public async Task An_edge_client_started_while_the_coordinator_is_down_and_cut_off_while_joining_still_completes()
    {
        using var federation = new Federation(shards: 1);
        var first = await federation.StartCoordinatorAsync();
        var id = await federation.CreateExperimentAsync(rounds: 2, minClients: 1, deadlineSeconds: 60);
        await federation.EnrolDeviceAsync(1);
        first.Kill();
        await first.WaitAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(30));

        var waiting = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var connected = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var edge = await federation.StartEdgeAsync(1, id, line =>
        {
            if (line.Contains("retrying with backoff", StringComparison.Ordinal))
                waiting.TrySetResult();
            if (line.Contains("connected to", StringComparison.Ordinal))
                connected.TrySetResult();
        });
        await waiting.Task.WaitAsync(TimeSpan.FromSeconds(120));
        Assert.False(edge.HasExited, "the client must wait for the coordinator, not exit");

        var second = await federation.StartCoordinatorAsync("coordinator-2");
        await connected.Task.WaitAsync(TimeSpan.FromSeconds(120));
        second.Kill(); // while the client joins and catches up
        await second.WaitAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(30));
        await federation.StartCoordinatorAsync("coordinator-3");

        await Federation.ExitsCleanlyAsync(edge, 240);
        var experiment = await federation.ExperimentAsync(id);
        Assert.Equal("Completed", experiment.GetProperty("state").GetString());
        Assert.Equal(2, Federation.Rounds(experiment).Count(r => r.GetProperty("state").GetString() == "Completed"));
    }

    [Fact]
    public async Task A_revoked_edge_client_is_cut_off_and_ends_with_one_line_and_exit_code_2()
    {
        using var federation = new Federation(shards: 1);
        await federation.StartCoordinatorAsync();
        var id = await federation.CreateExperimentAsync(rounds: 5, minClients: 2, deadlineSeconds: 60);
        string clientId = await federation.EnrolDeviceAsync(1);
        var joined = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var edge = await federation.StartEdgeAsync(1, id, line =>
        {
            if (line.Contains("connected to", StringComparison.Ordinal))
                joined.TrySetResult();
        });
        await joined.Task.WaitAsync(TimeSpan.FromSeconds(120));
        (await federation.Admin.PostAsync($"api/clients/{clientId}/revoke", null)).EnsureSuccessStatusCode();

        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(120));
        await edge.WaitAsync(timeout.Token);
        var log = File.ReadAllText(edge.LogPath);
        Assert.True(edge.ExitCode == 2, $"a revoked client exits 2, not {edge.ExitCode}: {log}");
        Assert.Contains("refused the token", log);
        Assert.DoesNotContain("   at ", log);
    }
}
