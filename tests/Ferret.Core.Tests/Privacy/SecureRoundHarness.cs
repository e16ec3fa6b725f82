using Ferret.Core.Privacy;

namespace Ferret.Core.Tests.Privacy;

/// <summary>
/// Drives n in-memory clients and the coordinator's functions through the four stages of a secure round, with
/// reproducible secrets, so tests can drop clients at any stage or tamper with what the coordinator forwards.
/// </summary>
internal sealed class SecureRoundHarness : IDisposable
{
    public const string Experiment = "exp-secure";

    public SecureRoundHarness(int clients, int threshold, int neighbours, int length, int round = 1, ulong seed = 7)
    {
        var ids = Enumerable.Range(0, clients).Select(i => $"client-{i:D3}").ToArray();
        Round = SecureRound.Create(Experiment, round, ids, threshold, neighbours, length, graphSeed: seed);
        var random = new Random((int)seed);
        foreach (var (id, i) in ids.Select((id, i) => (id, i)))
        {
            Clients[id] = new SecureAggregationClient(Experiment, round, id, length, new SeededSecrets(seed * 1000 + (ulong)i));
            Inputs[id] = Enumerable.Range(0, length).Select(_ => (uint)random.NextInt64(0, 1L << 32)).ToArray();
        }
    }

    public SecureRound Round { get; }

    public Dictionary<string, SecureAggregationClient> Clients { get; } = new(StringComparer.Ordinal);

    public Dictionary<string, uint[]> Inputs { get; } = new(StringComparer.Ordinal);

    public Dictionary<string, AdvertisedKeys> Advertised { get; } = new(StringComparer.Ordinal);

    public Dictionary<string, ShareKeysRequest> ShareRequests { get; private set; } = [];

    public Dictionary<string, ShareKeysResponse> Shared { get; } = new(StringComparer.Ordinal);

    public Dictionary<string, MaskedInputRequest> MaskRequests { get; private set; } = [];

    public Dictionary<string, MaskedInput> Masked { get; } = new(StringComparer.Ordinal);

    public Dictionary<string, UnmaskRequest> UnmaskRequests { get; private set; } = [];

    public Dictionary<string, UnmaskResponse> Revealed { get; } = new(StringComparer.Ordinal);

    public IEnumerable<string> Ids => Round.Participants;

    public void Advertise(params string[] silent)
    {
        foreach (var id in Ids.Except(silent))
        {
            var keys = Clients[id].Advertise();
            Assert.Null(SecureAggregationServer.CheckAdvertised(Round, id, keys));
            Advertised[id] = keys;
        }
        ShareRequests = SecureAggregationServer.ShareKeysRequests(Round, Advertised, DateTimeOffset.UnixEpoch);
    }

    public void Share(params string[] silent)
    {
        foreach (var id in ShareRequests.Keys.Except(silent))
        {
            var response = Clients[id].ShareKeys(ShareRequests[id]);
            Assert.Null(SecureAggregationServer.CheckShares(Round, id, response, Advertised));
            Shared[id] = response;
        }
        MaskRequests = SecureAggregationServer.MaskedInputRequests(Round, Shared, DateTimeOffset.UnixEpoch);
    }

    public void Mask(params string[] silent)
    {
        foreach (var id in MaskRequests.Keys.Except(silent))
        {
            var input = Clients[id].Mask(MaskRequests[id], Inputs[id]);
            Assert.Null(SecureAggregationServer.CheckMaskedInput(Round, id, input, Shared));
            Masked[id] = input;
        }
        UnmaskRequests = SecureAggregationServer.UnmaskRequests(Round, Shared.Keys, Masked.Keys, DateTimeOffset.UnixEpoch);
    }

    public void Unmask(params string[] silent)
    {
        foreach (var id in UnmaskRequests.Keys.Except(silent))
        {
            var response = Clients[id].Unmask(UnmaskRequests[id]);
            Assert.Null(SecureAggregationServer.CheckUnmask(Round, id, response, Shared, Masked.Keys));
            Revealed[id] = response;
        }
    }

    public UnmaskOutcome Finish() => SecureAggregationServer.Unmask(Round, Advertised, Shared, Masked, Revealed);

    /// <summary>The plain sum modulo 2^32 of the named clients' inputs.</summary>
    public uint[] PlainSum(IEnumerable<string> ids)
    {
        var sum = new uint[Round.VectorLength];
        foreach (var id in ids)
        {
            for (int i = 0; i < sum.Length; i++)
                sum[i] += Inputs[id][i];
        }
        return sum;
    }

    public void Dispose()
    {
        foreach (var c in Clients.Values)
            c.Dispose();
    }
}
