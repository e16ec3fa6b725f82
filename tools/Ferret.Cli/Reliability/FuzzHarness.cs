using System.Buffers;
using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net.Http.Headers;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json;
using Ferret.Cli.Demo;
using Ferret.Core.Algorithms;
using Ferret.Core.Packets;
using Ferret.Core.Protocol;
using MessagePack;
using Microsoft.AspNetCore.SignalR;
using Microsoft.AspNetCore.SignalR.Client;

namespace Ferret.Cli.Reliability;

internal sealed record FuzzOptions(int Packets, int Seed);

/// <summary>What a fuzz run measured; the first five are the <c>--json</c> keys the issue fixes.</summary>
internal sealed record FuzzReport(
    int Packets, int Crashes, int InvalidAccepted, int RoundsCompletedAfter, long RssGrowthBytes,
    int ValidAccepted, int ValidRejected, int SenderDrops, int OtherDrops, int RawFrames, int RawConnectionsClosed, int HttpBodies, int Http5xx,
    long RejectionRows, IReadOnlyDictionary<string, int> ByKind, IReadOnlyList<string> Examples, double PacketsPerSecond, double Seconds);

/// <summary>
/// <c>ferret bench fuzz</c>: mutated packets of every algorithm through real connections to running
/// experiments (one per algorithm), malformed hub frames over raw WebSockets, malformed HTTP bodies; then the
/// rounds must still finish. Every packet is judged by <see cref="PacketOracle"/>, independently of the
/// coordinator: an invalid packet that is accepted, or that is turned away only because its sender had
/// already answered (it passed every content check), counts as invalid accepted.
/// </summary>
internal sealed class FuzzHarness(FuzzOptions options, Action<string> say)
{
    private const int ConnectionsPerExperiment = 4;
    private static readonly string[] PostContent = ["replay", "not assigned", "late packet", "has not opened"];
    private readonly ConcurrentDictionary<string, int> _byKind = new(StringComparer.Ordinal);
    private readonly ConcurrentBag<string> _examples = [];
    private readonly ConcurrentDictionary<string, byte[]> _acceptedFromFuzzer = new(StringComparer.Ordinal);
    private int _crashes, _invalidAccepted, _validAccepted, _validRejected, _senderDrops, _otherDrops, _sent;
    private int _rawFrames, _rawClosed, _httpBodies, _http5xx;

    public async Task<FuzzReport> RunAsync(CancellationToken ct)
    {
        var total = Stopwatch.StartNew();
        // Limits that would slow the fuzzer down are lifted; the rejection writer keeps its default rate (that is under test too).
        using var bed = new Testbed("fuzz", ["--Ferret:HubCallsPerSecond", "1000000", "--Ferret:FailedAuthenticationsPerMinute", "1000000"]);
        var coordinator = await bed.StartCoordinatorAsync("coordinator", ct: ct).ConfigureAwait(false);
        var experiments = new List<ExperimentDescriptor>();
        foreach (var algorithm in FederatedAlgorithms.Names)
        {
            experiments.Add(await bed.CreateExperimentAsync(new Dictionary<string, object?>
            {
                ["name"] = "fuzz-" + algorithm,
                ["algorithm"] = algorithm,
                ["rounds"] = 2,
                ["fraction"] = 1.0,
                ["experimentSeed"] = 3UL,
                ["candidateSeeds"] = algorithm == FederatedAlgorithms.FedKSeed ? 256 : 64,
                ["minClients"] = 2,
                ["roundDeadlineSeconds"] = 3600,
            }, ct).ConfigureAwait(false));
        }
        var (_, fuzzerToken) = await bed.EnrolAsync("fuzzer", ct).ConfigureAwait(false);
        var (_, honestToken) = await bed.EnrolAsync("honest", ct).ConfigureAwait(false);
        var (_, rawToken) = await bed.EnrolAsync("raw", ct).ConfigureAwait(false);

        var honest = new Dictionary<string, HubConnection>(StringComparer.Ordinal);
        var fuzzers = new Dictionary<string, HubConnection[]>(StringComparer.Ordinal);
        var assigned = experiments.ToDictionary(d => d.Id, _ => new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously), StringComparer.Ordinal);
        var completed = new ConcurrentDictionary<(string, int), bool>();
        await using var observer = bed.Hub(bed.AdminKey, reconnect: true);
        Watch(observer);
        observer.On<RoundEvent>(RoundsProtocol.RoundEvent, e =>
        {
            if (e.Kind == RoundEvent.Completed)
                completed[(e.ExperimentId, e.Round)] = true;
        });
        await observer.StartAsync(ct).ConfigureAwait(false);
        try
        {
            foreach (var d in experiments)
            {
                await observer.InvokeAsync(RoundsProtocol.Subscribe, d.Id, ct).ConfigureAwait(false);
                var h = bed.Hub(honestToken, reconnect: true);
                Watch(h);
                h.On<RoundAssignment>(RoundsProtocol.Assignment, a =>
                {
                    if (a.Round == 1)
                        assigned[a.ExperimentId].TrySetResult();
                });
                await h.StartAsync(ct).ConfigureAwait(false);
                honest[d.Id] = h;
                var f = new HubConnection[ConnectionsPerExperiment];
                for (int i = 0; i < f.Length; i++)
                    f[i] = await ConnectFuzzerAsync(bed, fuzzerToken, d.Id, ct).ConfigureAwait(false);
                fuzzers[d.Id] = f;
                await h.InvokeAsync<JoinResult>(RoundsProtocol.Join, d.Id, null, ct).ConfigureAwait(false);
            }
            await Task.WhenAll(assigned.Values.Select(t => t.Task)).WaitAsync(TimeSpan.FromSeconds(120), ct).ConfigureAwait(false);
            await Task.Delay(1000, ct).ConfigureAwait(false);
            var before = ProcessStats.Sample(coordinator.Id);
            say($"{experiments.Count} experiments open for round 1; sending {options.Packets} mutated packets over {experiments.Count * ConnectionsPerExperiment} connections");

            var fuzzing = Stopwatch.StartNew();
            var shares = Shares(experiments);
            var workers = new List<Task>();
            int worker = 0;
            foreach (var d in experiments)
            {
                var oracle = new PacketOracle(d, 1_000_000);
                // A few valid packets per experiment, made once (a Ferret projection is not free); every send mutates one of them.
                var originals = Enumerable.Range(0, 8).Select(salt => PacketFactory.Valid(d, 1, salt)).ToArray();
                for (int c = 0; c < ConnectionsPerExperiment; c++)
                {
                    int count = (shares[d.Id] / ConnectionsPerExperiment) + (c < shares[d.Id] % ConnectionsPerExperiment ? 1 : 0);
                    int slot = c, seed = options.Seed + (1000 * worker++);
                    workers.Add(Task.Run(() => FuzzConnectionAsync(bed, fuzzerToken, d, originals, fuzzers[d.Id], slot, oracle, count, seed, ct), ct));
                }
            }
            workers.Add(Task.Run(() => RawFramesAsync(bed, rawToken, experiments[0].Id, Math.Max(10, options.Packets / 20), ct), ct));
            workers.Add(Task.Run(() => HttpBodiesAsync(bed, Math.Max(10, options.Packets / 50), ct), ct));
            await Task.WhenAll(workers).ConfigureAwait(false);
            double fuzzSeconds = fuzzing.Elapsed.TotalSeconds;
            say($"fuzzing done in {fuzzSeconds:F1} s: {_invalidAccepted} invalid accepted, {_crashes} crashes; finishing the rounds");

            // The rounds must still finish: the honest client answers, the fuzzer answers or reports a failure.
            foreach (var d in experiments)
            {
                var result = await honest[d.Id].InvokeAsync<SubmitResult>(RoundsProtocol.SubmitUpdate, d.Id, 1, PacketFactory.ValidBytes(d, 1), ct).ConfigureAwait(false);
                if (!result.Accepted)
                    say($"{d.Algorithm}: the honest packet of round 1 was refused: {result.Reason}");
                if (!_acceptedFromFuzzer.ContainsKey(d.Id))
                    await fuzzers[d.Id][0].InvokeAsync(RoundsProtocol.ReportFailure, d.Id, 1, "fuzzer", ct).ConfigureAwait(false);
            }
            foreach (var d in experiments)
            {
                await WaitAsync(() => completed.ContainsKey((d.Id, 1)), TimeSpan.FromSeconds(120), ct).ConfigureAwait(false);
                foreach (var h in new[] { honest[d.Id], fuzzers[d.Id][0] })
                    await SubmitUntilAcceptedAsync(h, d, 2, ct).ConfigureAwait(false);
            }
            foreach (var d in experiments)
                await WaitAsync(() => completed.ContainsKey((d.Id, 2)), TimeSpan.FromSeconds(120), ct).ConfigureAwait(false);
            int roundsAfter = 0;
            long rejectionRows = 0;
            foreach (var d in experiments)
            {
                var view = await bed.Admin.GetFromJsonAsync(d.Id, ct).ConfigureAwait(false);
                roundsAfter += view.GetProperty("roundLog").EnumerateArray().Count(r => r.GetProperty("state").GetString() == "Completed");
                rejectionRows += view.GetProperty("rejections").GetInt64();
            }
            var after = ProcessStats.Sample(coordinator.Id);
            if (coordinator.HasExited)
                Interlocked.Increment(ref _crashes);
            return new FuzzReport(_sent, _crashes, _invalidAccepted, roundsAfter, after.RssBytes - before.RssBytes, _validAccepted, _validRejected,
                _senderDrops, _otherDrops, _rawFrames, _rawClosed, _httpBodies, _http5xx, rejectionRows, new SortedDictionary<string, int>(_byKind),
                [.. _examples.Take(10)], _sent / fuzzSeconds, total.Elapsed.TotalSeconds);
        }
        finally
        {
            foreach (var h in honest.Values.Concat(fuzzers.Values.SelectMany(f => f)))
                await h.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <summary>Packets per experiment: full deltas are megabytes each, so they get a small share; the compact algorithms the rest.</summary>
    private Dictionary<string, int> Shares(IReadOnlyList<ExperimentDescriptor> experiments)
    {
        int full = Math.Max(ConnectionsPerExperiment, options.Packets / 200);
        var fullDelta = experiments.Where(d => d.Algorithm is FederatedAlgorithms.FedAvg or FederatedAlgorithms.FedZo).ToList();
        var compact = experiments.Except(fullDelta).ToList();
        int rest = Math.Max(0, options.Packets - (full * fullDelta.Count));
        var shares = fullDelta.ToDictionary(d => d.Id, _ => full, StringComparer.Ordinal);
        for (int i = 0; i < compact.Count; i++)
            shares[compact[i].Id] = (rest / compact.Count) + (i < rest % compact.Count ? 1 : 0);
        return shares;
    }

    private void Watch(HubConnection connection)
    {
        connection.Reconnecting += _ =>
        {
            Interlocked.Increment(ref _otherDrops);
            return Task.CompletedTask;
        };
        connection.Closed += _ =>
        {
            Interlocked.Increment(ref _otherDrops);
            return Task.CompletedTask;
        };
    }

    private static async Task<HubConnection> ConnectFuzzerAsync(Testbed bed, string token, string experimentId, CancellationToken ct)
    {
        var hub = bed.Hub(token);
        await hub.StartAsync(ct).ConfigureAwait(false);
        await hub.InvokeAsync<JoinResult>(RoundsProtocol.Join, experimentId, null, ct).ConfigureAwait(false);
        return hub;
    }

    private async Task FuzzConnectionAsync(Testbed bed, string token, ExperimentDescriptor d, ClientUpdate[] originals, HubConnection[] connections, int slot,
        PacketOracle oracle, int count, int seed, CancellationToken ct)
    {
        var random = new Random(seed);
        var mutator = new PacketMutator(random);
        for (int i = 0; i < count; i++)
        {
            byte[] packet;
            string kind;
            string? invalid;
            if (i % 50 == 49 && _acceptedFromFuzzer.TryGetValue(d.Id, out var stored))
            {
                (packet, kind, invalid) = (stored, "replay", "a packet this client already sent");
            }
            else
            {
                (packet, kind) = mutator.Mutate(originals[random.Next(originals.Length)]);
                invalid = oracle.Judge(packet, 1);
            }
            _byKind.AddOrUpdate(kind, 1, (_, n) => n + 1);
            Interlocked.Increment(ref _sent);
            SubmitResult result;
            try
            {
                result = await connections[slot].InvokeAsync<SubmitResult>(RoundsProtocol.SubmitUpdate, d.Id, 1, packet, ct).ConfigureAwait(false);
            }
            catch (HubException e) when (e.Message.Contains("HubException:", StringComparison.Ordinal))
            {
                continue; // refused with a reason (HubException thrown on purpose by the hub)
            }
            catch (HubException e)
            {
                Interlocked.Increment(ref _crashes); // an unexpected server-side exception
                _examples.Add($"{d.Algorithm} {kind}: server error {e.Message}");
                continue;
            }
            catch (Exception e) when (e is InvalidOperationException or IOException or WebSocketException or TaskCanceledException && !ct.IsCancellationRequested)
            {
                Interlocked.Increment(ref _senderDrops);
                await connections[slot].DisposeAsync().ConfigureAwait(false);
                connections[slot] = await ConnectFuzzerAsync(bed, token, d.Id, ct).ConfigureAwait(false);
                continue;
            }
            // A replay must be turned away as a replay; any other invalid packet must fail a content check, not only the one-per-round rule.
            bool postContent = !result.Accepted && kind != "replay" && PostContent.Any(p => result.Reason?.Contains(p, StringComparison.Ordinal) == true);
            if (invalid is not null && (result.Accepted || postContent))
            {
                Interlocked.Increment(ref _invalidAccepted);
                _examples.Add($"{d.Algorithm} {kind}: invalid ({invalid}) but {(result.Accepted ? "accepted" : "passed every content check: " + result.Reason)}");
            }
            else if (invalid is null && result.Accepted)
            {
                Interlocked.Increment(ref _validAccepted);
                _acceptedFromFuzzer[d.Id] = packet;
            }
            else if (invalid is null && !postContent)
            {
                Interlocked.Increment(ref _validRejected);
                _examples.Add($"{d.Algorithm} {kind}: valid by the oracle but refused: {result.Reason}");
            }
        }
    }

    private static async Task SubmitUntilAcceptedAsync(HubConnection hub, ExperimentDescriptor d, int round, CancellationToken ct)
    {
        for (int attempt = 0; attempt < 100; attempt++)
        {
            var result = await hub.InvokeAsync<SubmitResult>(RoundsProtocol.SubmitUpdate, d.Id, round, PacketFactory.ValidBytes(d, round), ct).ConfigureAwait(false);
            if (result.Accepted || result.Reason?.Contains("replay", StringComparison.Ordinal) == true)
                return;
            await Task.Delay(200, ct).ConfigureAwait(false); // round 2 may not have opened yet
        }
    }

    /// <summary>Malformed hub frames over raw WebSockets: garbage, lying length prefixes, invocations with wrong argument types.</summary>
    private async Task RawFramesAsync(Testbed bed, string token, string experimentId, int frames, CancellationToken ct)
    {
        var random = new Random(options.Seed + 77);
        ClientWebSocket? socket = null;
        try
        {
            for (int i = 0; i < frames; i++)
            {
                if (socket is not { State: WebSocketState.Open })
                {
                    socket?.Dispose();
                    socket = await OpenRawAsync(bed, token, ct).ConfigureAwait(false);
                }
                byte[] frame = (i % 3) switch
                {
                    0 => RandomBytes(random, random.Next(1, 256)),
                    1 => [0xff, 0xff, 0xff, 0xff, 0x0f, .. RandomBytes(random, 16)],
                    _ => Invocation(experimentId, random),
                };
                Interlocked.Increment(ref _rawFrames);
                try
                {
                    await socket.SendAsync(frame, WebSocketMessageType.Binary, endOfMessage: true, ct).ConfigureAwait(false);
                    using var wait = CancellationTokenSource.CreateLinkedTokenSource(ct);
                    wait.CancelAfter(TimeSpan.FromMilliseconds(50));
                    var buffer = new byte[4096];
                    var got = await socket.ReceiveAsync(buffer, wait.Token).ConfigureAwait(false);
                    if (got.MessageType == WebSocketMessageType.Close)
                        Interlocked.Increment(ref _rawClosed);
                }
                catch (OperationCanceledException) when (!ct.IsCancellationRequested)
                {
                    // no answer within 50 ms: the frame was swallowed; the socket may be aborted by the cancellation
                }
                catch (Exception e) when (e is WebSocketException or IOException)
                {
                    Interlocked.Increment(ref _rawClosed);
                }
            }
        }
        finally
        {
            socket?.Dispose();
        }
    }

    private static async Task<ClientWebSocket> OpenRawAsync(Testbed bed, string token, CancellationToken ct)
    {
        using var http = new HttpClient { BaseAddress = bed.Url };
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        using var negotiate = await http.PostAsync(new Uri($"{RoundsProtocol.Path.TrimStart('/')}/negotiate?negotiateVersion=1", UriKind.Relative), null, ct).ConfigureAwait(false);
        negotiate.EnsureSuccessStatusCode();
        string id = JsonDocument.Parse(await negotiate.Content.ReadAsStringAsync(ct).ConfigureAwait(false)).RootElement.GetProperty("connectionToken").GetString()!;
        var socket = new ClientWebSocket();
        socket.Options.SetRequestHeader("Authorization", "Bearer " + token);
        var ws = new UriBuilder(new Uri(bed.Url, RoundsProtocol.Path)) { Scheme = "ws", Query = "id=" + Uri.EscapeDataString(id) }.Uri;
        await socket.ConnectAsync(ws, ct).ConfigureAwait(false);
        await socket.SendAsync(Encoding.UTF8.GetBytes("{\"protocol\":\"messagepack\",\"version\":1}\u001e"), WebSocketMessageType.Text, true, ct).ConfigureAwait(false);
        await socket.ReceiveAsync(new byte[1024], ct).ConfigureAwait(false); // the handshake answer
        return socket;
    }

    /// <summary>A well-framed invocation of SubmitUpdate whose arguments have the wrong types.</summary>
    private static byte[] Invocation(string experimentId, Random random)
    {
        var body = new ArrayBufferWriter<byte>();
        var w = new MessagePackWriter(body);
        w.WriteArrayHeader(6);
        w.Write(1); // invocation
        w.WriteMapHeader(0);
        w.Write("1");
        w.Write(random.Next(2) == 0 ? RoundsProtocol.SubmitUpdate : "NoSuchMethod");
        w.WriteArrayHeader(3);
        w.Write(experimentId);
        w.Write("not a round");
        w.Write(random.NextDouble());
        w.WriteArrayHeader(0);
        w.Flush();
        var length = new List<byte>();
        int n = body.WrittenCount;
        do
        {
            byte b = (byte)(n & 0x7f);
            n >>= 7;
            length.Add(n > 0 ? (byte)(b | 0x80) : b);
        }
        while (n > 0);
        return [.. length, .. body.WrittenSpan];
    }

    private static byte[] RandomBytes(Random random, int n)
    {
        var b = new byte[n];
        random.NextBytes(b);
        return b;
    }

    /// <summary>Malformed bodies to every endpoint that takes one: random bytes, wrong types, deep nesting, huge numbers.</summary>
    private async Task HttpBodiesAsync(Testbed bed, int count, CancellationToken ct)
    {
        var random = new Random(options.Seed + 99);
        using var anonymous = new HttpClient { BaseAddress = bed.Url };
        string[] bodies =
        [
            "{", "[]", "null", "{\"name\": 5}", "{\"algorithm\": {\"a\": [1, 2]}, \"rounds\": \"many\"}", "{\"rounds\": 1e999, \"fraction\": -1}",
            new string('[', 5000) + new string(']', 5000), "{\"enrolmentToken\": null, \"name\": null, \"capabilities\": 7}",
            "{\"validMinutes\": 99999999999}", "{\"label\": \"" + new string('l', 10_000) + "\"}",
        ];
        for (int i = 0; i < count; i++)
        {
            var (client, path) = (i % 3) switch
            {
                0 => (bed.Admin, "api/experiments"),
                1 => (bed.Admin, "api/enrolments"),
                _ => (anonymous, "api/clients/enrol"),
            };
            HttpContent content = random.Next(3) == 0
                ? new ByteArrayContent(RandomBytes(random, random.Next(1, 2048)))
                : new StringContent(bodies[random.Next(bodies.Length)], Encoding.UTF8);
            content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
            using (content)
            {
                Interlocked.Increment(ref _httpBodies);
                using var response = await client.PostAsync(new Uri(path, UriKind.Relative), content, ct).ConfigureAwait(false);
                if ((int)response.StatusCode >= 500)
                {
                    Interlocked.Increment(ref _http5xx);
                    Interlocked.Increment(ref _crashes);
                    _examples.Add($"POST /{path}: {(int)response.StatusCode}");
                }
            }
        }
    }

    private static async Task WaitAsync(Func<bool> condition, TimeSpan limit, CancellationToken ct)
    {
        var clock = Stopwatch.StartNew();
        while (!condition())
        {
            if (clock.Elapsed > limit)
                throw new TimeoutException($"the rounds did not finish within {limit.TotalSeconds:F0} s after fuzzing");
            await Task.Delay(100, ct).ConfigureAwait(false);
        }
    }
}
