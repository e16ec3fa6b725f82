using System.Collections.Concurrent;
using System.Diagnostics;
using Ferret.Cli.Demo;
using Ferret.Core.Algorithms;
using Ferret.Core.Protocol;
using Microsoft.AspNetCore.SignalR.Client;

namespace Ferret.Cli.Reliability;

internal sealed record LoadOptions(int Clients, int Rounds);

/// <summary>What a load run measured; the first five are the <c>--json</c> keys the issue fixes.</summary>
internal sealed record LoadReport(
    int Clients, int RoundsCompleted, double RoundCloseP50Ms, double RoundCloseP99Ms, double BytesPerConnection,
    double PacketsPerSecond, int PacketsAccepted, int PacketsRejected, double CoordinatorCpuPercent, double HarnessCpuPercent,
    long CoordinatorRssBaselineBytes, long CoordinatorRssJoinedBytes, long CoordinatorRssPeakBytes, string Saturated, double ConnectSeconds, double Seconds);

/// <summary>
/// <c>ferret bench load</c>: N lightweight clients (real SignalR connections over WebSockets, valid Ferret
/// packets from a fixed projection, no training) take part in one experiment; reports round close latency,
/// packets per second at the door, the coordinator's CPU and memory per connection, and which resource ran
/// out first.
/// </summary>
internal sealed class LoadHarness(LoadOptions options, Action<string> say)
{
    public async Task<LoadReport> RunAsync(CancellationToken ct)
    {
        var total = Stopwatch.StartNew();
        using var bed = new Testbed("load");
        var coordinator = await bed.StartCoordinatorAsync("coordinator", ct: ct).ConfigureAwait(false);
        int n = options.Clients;
        var settings = new Dictionary<string, object?>
        {
            ["algorithm"] = FederatedAlgorithms.Ferret,
            ["fraction"] = 1.0,
            ["experimentSeed"] = 9UL,
            ["candidateSeeds"] = 64,
            ["roundDeadlineSeconds"] = 600,
        };
        // A waiting room (it needs one client more than there are, so it never opens a round) to measure idle connections.
        var lobby = await bed.CreateExperimentAsync(new(settings) { ["name"] = "load-lobby", ["rounds"] = 1, ["minClients"] = n + 1 }, ct).ConfigureAwait(false);
        var experiment = await bed.CreateExperimentAsync(new(settings) { ["name"] = "load", ["rounds"] = options.Rounds, ["minClients"] = n }, ct).ConfigureAwait(false);
        var packets = Enumerable.Range(1, options.Rounds).ToDictionary(r => r, r => PacketFactory.ValidBytes(experiment, r));
        await Task.Delay(1000, ct).ConfigureAwait(false);
        var baseline = ProcessStats.Sample(coordinator.Id);

        var hubs = new ConcurrentBag<HubConnection>();
        int accepted = 0, rejected = 0;
        var connect = Stopwatch.StartNew();
        try
        {
            using var gate = new SemaphoreSlim(16);
            int connected = 0;
            await Task.WhenAll(Enumerable.Range(0, n).Select(async i =>
            {
                await gate.WaitAsync(ct).ConfigureAwait(false);
                try
                {
                    var (_, token) = await bed.EnrolAsync($"load-{i}", ct).ConfigureAwait(false);
                    var hub = bed.Hub(token);
                    hub.On<RoundAssignment>(RoundsProtocol.Assignment, a => _ = SubmitAsync(hub, a));
                    await hub.StartAsync(ct).ConfigureAwait(false);
                    await hub.InvokeAsync<JoinResult>(RoundsProtocol.Join, lobby.Id, null, ct).ConfigureAwait(false);
                    hubs.Add(hub);
                    if (Interlocked.Increment(ref connected) % Math.Max(1, n / 10) == 0)
                        say($"{connected} of {n} clients enrolled, connected and waiting");
                }
                finally
                {
                    gate.Release();
                }
            })).ConfigureAwait(false);
            double connectSeconds = connect.Elapsed.TotalSeconds;
            await Task.Delay(2000, ct).ConfigureAwait(false); // let start-up garbage settle
            var joined = ProcessStats.Sample(coordinator.Id);
            say($"{n} connections: coordinator RSS {joined.RssBytes / 1048576.0:F0} MiB ({(joined.RssBytes - baseline.RssBytes) / 1024.0 / n:F1} KiB per connection)");

            // The rounds: every client moves to the experiment; the last one to join opens round 1.
            var closes = new ConcurrentBag<double>();
            var ended = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            await using var observer = bed.Hub(bed.AdminKey);
            observer.On<RoundEvent>(RoundsProtocol.RoundEvent, e =>
            {
                if (e.Kind == RoundEvent.Completed)
                {
                    closes.Add(e.Seconds * 1000);
                    say($"round {e.Round}: {e.Aggregated} of {e.Assigned} packets, closed {e.Seconds:F2} s after opening");
                }
                if (e.ExperimentEnded)
                    ended.TrySetResult();
            });
            await observer.StartAsync(ct).ConfigureAwait(false);
            await observer.InvokeAsync(RoundsProtocol.Subscribe, experiment.Id, ct).ConfigureAwait(false);
            var cpuStart = ProcessStats.Sample(coordinator.Id);
            var harnessStart = Process.GetCurrentProcess().TotalProcessorTime;
            var rounds = Stopwatch.StartNew();
            long peak = joined.RssBytes;
            using var sampling = new CancellationTokenSource();
            var sampler = Task.Run(async () =>
            {
                while (!sampling.IsCancellationRequested)
                {
                    peak = Math.Max(peak, ProcessStats.Sample(coordinator.Id).RssBytes);
                    await Task.Delay(250, CancellationToken.None).ConfigureAwait(false);
                }
            }, CancellationToken.None);
            await Task.WhenAll(hubs.Select(h => h.InvokeAsync<JoinResult>(RoundsProtocol.Join, experiment.Id, null, ct))).ConfigureAwait(false);
            await ended.Task.WaitAsync(TimeSpan.FromSeconds(600 + (options.Rounds * 120)), ct).ConfigureAwait(false);
            double wall = rounds.Elapsed.TotalSeconds;
            await sampling.CancelAsync().ConfigureAwait(false);
            await sampler.ConfigureAwait(false);
            var cpuEnd = ProcessStats.Sample(coordinator.Id);
            double harnessCpu = (Process.GetCurrentProcess().TotalProcessorTime - harnessStart).TotalSeconds;
            double cores = Environment.ProcessorCount;
            double coordinatorPercent = 100 * (cpuEnd.CpuSeconds - cpuStart.CpuSeconds) / wall / cores;
            double harnessPercent = 100 * harnessCpu / wall / cores;
            var latencies = closes.ToList();
            double busy = latencies.Sum() / 1000;
            return new LoadReport(n, latencies.Count, Percentiles.Of(latencies, 0.5), Percentiles.Of(latencies, 0.99),
                (double)(joined.RssBytes - baseline.RssBytes) / n, busy > 0 ? accepted / busy : 0, accepted, rejected, coordinatorPercent, harnessPercent,
                baseline.RssBytes, joined.RssBytes, peak, Saturation(coordinatorPercent, harnessPercent, peak), connectSeconds, total.Elapsed.TotalSeconds);
        }
        finally
        {
            await Task.WhenAll(hubs.Select(h => h.DisposeAsync().AsTask())).ConfigureAwait(false);
        }

        async Task SubmitAsync(HubConnection hub, RoundAssignment a)
        {
            try
            {
                var result = await hub.InvokeAsync<SubmitResult>(RoundsProtocol.SubmitUpdate, a.ExperimentId, a.Round, packets[a.Round], ct).ConfigureAwait(false);
                Interlocked.Increment(ref result.Accepted ? ref accepted : ref rejected);
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                Interlocked.Increment(ref rejected);
            }
        }
    }

    /// <summary>
    /// Which resource ran out first: the machine's CPU (and whose share of it), memory, or neither, in which case
    /// the rounds were waiting (on the round log's synchronous commits, on other work sharing the machine).
    /// </summary>
    private static string Saturation(double coordinatorPercent, double harnessPercent, long peakRss)
    {
        double memory = 100.0 * peakRss / GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;
        double load = ProcessStats.LoadAverage();
        string shares = $"coordinator {coordinatorPercent:F0} %, load generator {harnessPercent:F0} % of {Environment.ProcessorCount} cores; "
            + $"coordinator memory {memory:F1} % of the machine; load average {load:F1}";
        return coordinatorPercent + harnessPercent >= 85 ? $"cpu ({shares})"
            : memory >= 85 ? $"memory ({shares})"
            : $"neither cpu nor memory: waiting ({shares})";
    }
}
