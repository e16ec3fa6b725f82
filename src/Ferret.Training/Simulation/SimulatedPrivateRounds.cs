using System.Diagnostics;
using Ferret.Core.Algorithms;
using Ferret.Core.Packets;
using Ferret.Core.Privacy;
using Ferret.Core.Randomness;

namespace Ferret.Training.Simulation;

/// <summary>A simulated private round: its update and privacy line, and what the protocol cost (bytes, client and coordinator seconds).</summary>
public sealed record SimulatedPrivateRound(GlobalUpdate Update, RoundPrivacy Privacy, double? MeanTrainLoss, double BytesUp, double BytesDown, double ClientSeconds, double CoordinatorSeconds);

/// <summary>
/// Private aggregation inside a simulation, through the same code the coordinator and edge clients run: central
/// DP clips and noises the packets at the coordinator; secure aggregation runs all four stages between in-process
/// clients and the coordinator's functions, every message serialised so its bytes are the wire's. Secrets and
/// noise come from seeded sources, so a run reproduces (a deployment uses the operating system's).
/// </summary>
public sealed class SimulatedPrivateRounds
{
    private readonly ExperimentDescriptor _experiment;
    private readonly PrivateAggregation _aggregation;

    public SimulatedPrivateRounds(ExperimentDescriptor experiment, FerretAlgorithm coordinator)
    {
        ArgumentNullException.ThrowIfNull(experiment);
        _experiment = experiment;
        _aggregation = new PrivateAggregation(experiment, coordinator, new SeededSecrets(SeedMix.Combine(experiment.ExperimentSeed, 0xD9)));
    }

    public bool Secure => _aggregation.Secure;

    /// <summary>Aggregates one round of the named clients' packets (same order) drawn from <paramref name="population"/> clients.</summary>
    public SimulatedPrivateRound Run(int round, IReadOnlyList<string> clientIds, IReadOnlyList<FerretUpdate> packets, int population, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(clientIds);
        ArgumentNullException.ThrowIfNull(packets);
        var plan = _aggregation.Plan(round, clientIds.Count, population);
        if (!plan.Secure)
        {
            double up = packets.Sum(p => (double)Wire.Serialize<ClientUpdate>(p).Length);
            var timer = Stopwatch.StartNew();
            var result = _aggregation.AggregatePackets(round, plan, packets);
            return new SimulatedPrivateRound(result.Update, result.Privacy, result.MeanTrainLoss, up, 0, 0, timer.Elapsed.TotalSeconds);
        }
        return RunSecure(round, plan, clientIds, packets, cancellationToken);
    }

    private SimulatedPrivateRound RunSecure(int round, PrivacyPlan plan, IReadOnlyList<string> ids, IReadOnlyList<FerretUpdate> packets, CancellationToken ct)
    {
        var settings = _experiment.Privacy!.SecureAggregation!;
        int k = _experiment.Settings.CandidateSeeds;
        double up = 0, down = 0;
        var coordinatorTimer = new Stopwatch();
        var clientTimer = new Stopwatch();
        T Client<T>(Func<T> work)
        {
            clientTimer.Start();
            try
            {
                return work();
            }
            finally
            {
                clientTimer.Stop();
            }
        }
        T Coordinator<T>(Func<T> work)
        {
            coordinatorTimer.Start();
            try
            {
                return work();
            }
            finally
            {
                coordinatorTimer.Stop();
            }
        }
        // Each message crosses the wire once, up (client to coordinator) or down.
        T Up<T>(T message) => Cross(message, ref up);
        T Down<T>(T message) => Cross(message, ref down);
        static T Cross<T>(T message, ref double counter)
        {
            var b = Ferret.Core.Packets.Wire.Serialize(message);
            counter += b.Length;
            return Ferret.Core.Packets.Wire.Deserialize<T>(b);
        }

        var secure = Coordinator(() => SecureRound.Create(_experiment.Id, round, ids, settings.Threshold, settings.Neighbours, plan.VectorLength, _experiment.ExperimentSeed));
        var clients = new Dictionary<string, SecureAggregationClient>(StringComparer.Ordinal);
        var inputs = new Dictionary<string, uint[]>(StringComparer.Ordinal);
        var stats = ids.Select((id, i) => (id, i)).ToDictionary(p => p.id, p => packets[p.i].Stats, StringComparer.Ordinal);
        try
        {
            for (int i = 0; i < ids.Count; i++)
            {
                var secrets = new SeededSecrets(SeedMix.Combine(_experiment.ExperimentSeed, (ulong)round, SeedMix.Of(ids[i]), 3));
                clients[ids[i]] = Client(() => new SecureAggregationClient(_experiment.Id, round, ids[i], plan.VectorLength, secrets));
                inputs[ids[i]] = Client(() => PrivateEncoding.ForMasking(packets[i], plan, k, secrets));
            }
            var advertised = ids.ToDictionary(id => id, id => Up(Client(() => clients[id].Advertise())), StringComparer.Ordinal);
            var shareRequests = Coordinator(() => SecureAggregationServer.ShareKeysRequests(secure, advertised, DateTimeOffset.UnixEpoch));
            var shared = new Dictionary<string, ShareKeysResponse>(StringComparer.Ordinal);
            foreach (var (id, request) in shareRequests)
            {
                ct.ThrowIfCancellationRequested();
                shared[id] = Up(Client(() => clients[id].ShareKeys(Down(request))));
                if (Coordinator(() => SecureAggregationServer.CheckShares(secure, id, shared[id], advertised)) is { } why)
                    throw new SecureAggregationException($"{id}: {why}");
            }
            var maskRequests = Coordinator(() => SecureAggregationServer.MaskedInputRequests(secure, shared, DateTimeOffset.UnixEpoch));
            var masked = new Dictionary<string, MaskedInput>(StringComparer.Ordinal);
            foreach (var (id, request) in maskRequests)
            {
                ct.ThrowIfCancellationRequested();
                masked[id] = Up(Client(() => clients[id].Mask(Down(request), inputs[id], stats[id])));
            }
            var unmaskRequests = Coordinator(() => SecureAggregationServer.UnmaskRequests(secure, shared.Keys, masked.Keys, DateTimeOffset.UnixEpoch));
            var revealed = new Dictionary<string, UnmaskResponse>(StringComparer.Ordinal);
            foreach (var (id, request) in unmaskRequests)
            {
                revealed[id] = Up(Client(() => clients[id].Unmask(Down(request))));
                if (Coordinator(() => SecureAggregationServer.CheckUnmask(secure, id, revealed[id], shared, masked.Keys)) is { } why)
                    throw new SecureAggregationException($"{id}: {why}");
            }
            var outcome = Coordinator(() => SecureAggregationServer.Unmask(secure, advertised, shared, masked, revealed));
            if (!outcome.Succeeded)
                throw new SecureAggregationException($"round {round} could not be unmasked: {outcome.Failure}");
            var result = Coordinator(() => _aggregation.AggregateSum(round, plan, outcome.Sum, outcome.Summed.Count));
            return new SimulatedPrivateRound(result.Update, result.Privacy, result.MeanTrainLoss, up, down, clientTimer.Elapsed.TotalSeconds, coordinatorTimer.Elapsed.TotalSeconds);
        }
        finally
        {
            foreach (var c in clients.Values)
                c.Dispose();
        }
    }
}
