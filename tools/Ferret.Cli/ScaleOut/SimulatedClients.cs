using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net.Http.Json;
using System.Security.Cryptography;
using Ferret.Cli.Demo;
using Ferret.Core.Algorithms;
using Ferret.Core.Packets;
using Ferret.Core.Parameters;
using Ferret.Core.Projection;
using Ferret.Core.Protocol;
using Microsoft.AspNetCore.SignalR;
using Microsoft.AspNetCore.SignalR.Client;
using Microsoft.Extensions.DependencyInjection;

namespace Ferret.Cli.ScaleOut;

/// <summary>
/// Lightweight edge clients for <c>ferret bench scale</c>: enrolled clients on real SignalR connections
/// (WebSockets, MessagePack), spread over the coordinator instances, that join an experiment and answer each
/// assignment at once with a valid Ferret packet (a fixed delta projected onto the experiment's seeds: no
/// training). Each records when every round's global update reached it and the chain of updates it got.
/// </summary>
internal sealed class SimulatedClients : IAsyncDisposable
{
    private const int Variants = 4;
    private readonly List<Member> _members = [];
    private readonly ExperimentDescriptor _descriptor;
    private readonly ConcurrentDictionary<int, RoundClock> _rounds = new();
    private readonly ConcurrentDictionary<(int Round, int Variant), Lazy<byte[]>> _packets = new();
    private readonly ConcurrentDictionary<string, int> _refusals = new(StringComparer.Ordinal);
    private readonly TaskCompletionSource _lost = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _closed;

    private SimulatedClients(ExperimentDescriptor descriptor) => _descriptor = descriptor;

    public int Count => _members.Count;

    /// <summary>Packets not accepted, by reason (a coordinator's answer, or the error the invocation ended with).</summary>
    public IReadOnlyDictionary<string, int> Refusals => _refusals;

    public long Rejected => _refusals.Values.Sum();

    /// <summary>Enrols <paramref name="count"/> clients, client i through instance i mod N, connects and joins each.</summary>
    public static async Task<SimulatedClients> ConnectAsync(IReadOnlyList<HttpClient> admins, ExperimentDescriptor descriptor, int count,
        Action onJoined, CancellationToken ct)
    {
        var clients = new SimulatedClients(descriptor);
        var failures = new ConcurrentDictionary<string, int>(StringComparer.Ordinal);
        using var gate = new SemaphoreSlim(32);
        await Task.WhenAll(Enumerable.Range(0, count).Select(async i =>
        {
            await gate.WaitAsync(ct).ConfigureAwait(false);
            // One client that cannot get in must not hold up the rest: two minutes, then it counts as failed.
            using var patience = CancellationTokenSource.CreateLinkedTokenSource(ct);
            patience.CancelAfter(TimeSpan.FromMinutes(2));
            HubConnection? hub = null;
            try
            {
                var admin = admins[i % admins.Count];
                var enrolment = await CoordinatorProcess.PostAsync(admin, "api/enrolments", new { label = "bench-scale" }, patience.Token).ConfigureAwait(false);
                var enrolled = await CoordinatorProcess.PostAsync(admin, "api/clients/enrol",
                    new { enrolmentToken = enrolment.GetProperty("token").GetString(), name = $"sim-{i}" }, patience.Token).ConfigureAwait(false);
                string token = enrolled.GetProperty("token").GetString()!;
                hub = new HubConnectionBuilder()
                    .WithUrl(new Uri(admin.BaseAddress!, RoundsProtocol.Path), o => o.AccessTokenProvider = () => Task.FromResult<string?>(token))
                    .AddMessagePackProtocol()
                    .Build();
                var member = new Member(i, hub);
                // Handlers return at once: answering inside one would hold up the connection's receive loop.
                hub.On<RoundAssignment>(RoundsProtocol.Assignment, a => _ = Task.Run(() => clients.AnswerAsync(member, a), CancellationToken.None));
                hub.On<RoundEvent>(RoundsProtocol.RoundEvent, e => clients.Heard(member, e));
                await hub.StartAsync(patience.Token).ConfigureAwait(false);
                await hub.InvokeAsync<JoinResult>(RoundsProtocol.Join, descriptor.Id, null, patience.Token).ConfigureAwait(false);
                lock (clients._members)
                    clients._members.Add(member);
                hub.Closed += e => clients.Closed(e);
                hub = null;
                onJoined();
            }
            catch (Exception e) when (!ct.IsCancellationRequested && e is HttpRequestException or IOException or InvalidOperationException
                or OperationCanceledException or HubException or System.Net.WebSockets.WebSocketException)
            {
                failures.AddOrUpdate($"{e.GetType().Name}: {e.Message}", 1, (_, n) => n + 1);
            }
            finally
            {
                if (hub is not null)
                    await hub.DisposeAsync().ConfigureAwait(false);
                gate.Release();
            }
        })).ConfigureAwait(false);
        if (!failures.IsEmpty)
        {
            await clients.DisposeAsync().ConfigureAwait(false);
            var (reason, n) = failures.MaxBy(f => f.Value);
            throw new IOException($"{failures.Values.Sum()} of {count} simulated clients could not enrol, connect and join; most often ({n}): {reason}");
        }
        return clients;
    }

    /// <summary>Faults as soon as a joined client loses its connection (it would never hear the rest of the experiment).</summary>
    public Task ConnectionLost => _lost.Task;

    /// <summary>Completes when every client has heard round <paramref name="round"/> close (completed or abandoned).</summary>
    public Task RoundClosed(int round) => Clock(round).Closed.Task;

    /// <summary>Whether the round closed with a global update.</summary>
    public bool Completed(int round) => Clock(round).Kind == RoundEvent.Completed;

    /// <summary>Per client, from the round's last packet being sent to the global update reaching that client.</summary>
    public IEnumerable<double> CloseLatenciesMs(int round)
    {
        var c = Clock(round);
        return c.Heard.Select(t => Stopwatch.GetElapsedTime(Interlocked.Read(ref c.LastSubmitted), t).TotalMilliseconds);
    }

    /// <summary>From the first assignment's arrival to the last client hearing the round close.</summary>
    public TimeSpan Duration(int round)
    {
        var c = Clock(round);
        return Stopwatch.GetElapsedTime(Interlocked.Read(ref c.FirstAssigned), c.Heard.Max());
    }

    /// <summary>When the first assignment of <paramref name="round"/> arrived and when the last client heard it close.</summary>
    public (long First, long Last) Span(int round) => (Interlocked.Read(ref Clock(round).FirstAssigned), Clock(round).Heard.Max());

    /// <summary>The distinct sequences of global updates (SHA-256 per round) the clients hold: one when they all agree.</summary>
    public IReadOnlyList<IReadOnlyList<string>> DistinctChains() =>
        _members.Select(m =>
        {
            lock (m.Chain)
                return m.Chain.ToList();
        }).DistinctBy(c => string.Join(',', c)).Select(c => (IReadOnlyList<string>)c).ToList();

    /// <summary>The global updates one client received, in order (to replay onto the initial parameters).</summary>
    public IReadOnlyList<GlobalUpdate> UpdatesOfFirstClient()
    {
        var m = _members.OrderBy(m => m.Index).First();
        lock (m.Updates)
            return m.Updates.ToList();
    }

    /// <summary>SHA-256 of an update's canonical MessagePack bytes.</summary>
    public static string Digest(GlobalUpdate update) => Convert.ToHexStringLower(SHA256.HashData(Wire.Serialize(update)));

    public async ValueTask DisposeAsync()
    {
        _lost.TrySetResult(); // closing them now is no loss
        foreach (var m in _members)
            await m.Hub.DisposeAsync().ConfigureAwait(false);
    }

    private RoundClock Clock(int round) => _rounds.GetOrAdd(round, _ => new RoundClock());

    private Task Closed(Exception? e)
    {
        int n = Interlocked.Increment(ref _closed);
        _lost.TrySetException(new IOException(
            $"a simulated client lost its connection ({e?.Message ?? "closed by the coordinator"}); {n} so far. A coordinator or this process starved of CPU misses SignalR's 30 s keep-alive."));
        return Task.CompletedTask;
    }

    private async Task AnswerAsync(Member member, RoundAssignment a)
    {
        var clock = Clock(a.Round);
        long now = Stopwatch.GetTimestamp();
        Min(ref clock.FirstAssigned, now);
        var packet = _packets.GetOrAdd((a.Round, member.Index % Variants), key => new Lazy<byte[]>(() => Packet(key.Round, key.Variant))).Value;
        try
        {
            Max(ref clock.LastSubmitted, Stopwatch.GetTimestamp());
            var result = await member.Hub.InvokeAsync<SubmitResult>(RoundsProtocol.SubmitUpdate, _descriptor.Id, a.Round, packet).ConfigureAwait(false);
            if (!result.Accepted)
                _refusals.AddOrUpdate("rejected: " + result.Reason, 1, (_, n) => n + 1);
        }
        catch (Exception e) when (e is HubException or IOException or InvalidOperationException or OperationCanceledException)
        {
            _refusals.AddOrUpdate("failed: " + e.Message, 1, (_, n) => n + 1);
        }
    }

    private void Heard(Member member, RoundEvent e)
    {
        if (e.Kind is not (RoundEvent.Completed or RoundEvent.Abandoned))
            return;
        var clock = Clock(e.Round);
        clock.Kind = e.Kind;
        if (e.Kind == RoundEvent.Completed && e.GlobalUpdate is { } bytes)
        {
            var update = Wire.Deserialize<GlobalUpdate>(bytes);
            lock (member.Chain)
            {
                member.Chain.Add(Digest(update));
                if (member.Index == 0)
                    member.Updates.Add(update);
            }
        }
        clock.Heard.Add(Stopwatch.GetTimestamp());
        if (clock.Heard.Count >= _members.Count)
            clock.Closed.TrySetResult();
    }

    /// <summary>A fixed smooth delta, different per variant, projected onto the experiment's candidate seeds as a client would.</summary>
    private byte[] Packet(int round, int variant)
    {
        var blocks = ParameterBlocks.FromLengths(_descriptor.BlockLengths);
        var delta = new float[blocks.TotalLength];
        for (int i = 0; i < delta.Length; i++)
            delta[i] = MathF.Sin(i + (variant * 0.37f)) * 1e-3f;
        var gammas = Projector.Project(delta, blocks, _descriptor.CandidateSeeds, _descriptor.Settings.Distribution, new Random((round * Variants) + variant));
        return Wire.Serialize<ClientUpdate>(new FerretUpdate
        {
            ExperimentId = _descriptor.Id,
            Round = round,
            SampleCount = 10,
            Stats = new TrainingStats { Loss = 2.5 },
            SeedIndices = gammas.SeedIndices,
            Blocks = gammas.Blocks,
            Gammas = gammas.Values,
        });
    }

    private static void Min(ref long target, long value)
    {
        long seen;
        while (value < (seen = Interlocked.Read(ref target)) && Interlocked.CompareExchange(ref target, value, seen) != seen)
        {
        }
    }

    private static void Max(ref long target, long value)
    {
        long seen;
        while (value > (seen = Interlocked.Read(ref target)) && Interlocked.CompareExchange(ref target, value, seen) != seen)
        {
        }
    }

    private sealed class Member(int index, HubConnection hub)
    {
        public int Index { get; } = index;

        public HubConnection Hub { get; } = hub;

        public List<string> Chain { get; } = [];

        public List<GlobalUpdate> Updates { get; } = [];
    }

    private sealed class RoundClock
    {
        public long FirstAssigned = long.MaxValue;
        public long LastSubmitted;
        public string? Kind;

        public ConcurrentBag<long> Heard { get; } = [];

        public TaskCompletionSource Closed { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}
