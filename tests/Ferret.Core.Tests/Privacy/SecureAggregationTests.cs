using Ferret.Core.Packets;
using Ferret.Core.Privacy;

namespace Ferret.Core.Tests.Privacy;

public sealed class SecureAggregationTests
{
    [Theory]
    [InlineData(8, 5, 0)]
    [InlineData(12, 3, 4)]
    [InlineData(2, 2, 0)]
    public void The_secure_sum_equals_the_plain_sum(int clients, int threshold, int neighbours)
    {
        using var h = new SecureRoundHarness(clients, threshold, neighbours, length: 1000);
        h.Advertise();
        h.Share();
        h.Mask();
        h.Unmask();
        var outcome = h.Finish();
        Assert.True(outcome.Succeeded, outcome.Failure);
        Assert.Equal(h.PlainSum(h.Ids), outcome.Sum);
        Assert.Equal(h.Ids, outcome.Summed);
        // Nothing the coordinator holds is a client's input in the clear.
        foreach (var id in h.Ids)
            Assert.NotEqual(h.Inputs[id], h.Masked[id].Vector);
    }

    [Fact]
    public void The_neighbour_graph_is_a_symmetric_ring_of_the_requested_degree()
    {
        var ids = Enumerable.Range(0, 20).Select(i => $"c{i:D2}").ToArray();
        var round = SecureRound.Create("e", 3, ids, threshold: 3, neighbours: 5, vectorLength: 4, graphSeed: 9);
        Assert.Equal(6, round.NeighbourCount); // 5 rounded up to even
        foreach (var a in ids)
        {
            Assert.Equal(6, round.NeighboursOf(a).Count);
            Assert.DoesNotContain(a, round.NeighboursOf(a));
            Assert.All(round.NeighboursOf(a), b => Assert.True(round.AreNeighbours(b, a), $"{a} -> {b} without {b} -> {a}"));
        }
        var full = SecureRound.Create("e", 3, ids, threshold: 3, neighbours: 0, vectorLength: 4, graphSeed: 9);
        Assert.Equal(19, full.NeighbourCount);
        Assert.Throws<ArgumentException>(() => SecureRound.Create("e", 3, ids, threshold: 8, neighbours: 5, vectorLength: 4, graphSeed: 9));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(6)]
    public void Dropouts_after_masking_up_to_n_minus_threshold_are_recovered(int neighbours)
    {
        // n = 10, t = 6: four clients send their masked input and vanish before unmasking; their inputs still count.
        using var h = new SecureRoundHarness(10, 6, neighbours, length: 257);
        h.Advertise();
        h.Share();
        h.Mask();
        var gone = neighbours == 0 ? h.Ids.Take(4).ToArray() : [h.Ids.ElementAt(1)];
        h.Unmask(gone);
        var outcome = h.Finish();
        Assert.True(outcome.Succeeded, outcome.Failure);
        Assert.Equal(h.PlainSum(h.Ids), outcome.Sum);
    }

    [Fact]
    public void One_dropout_more_than_n_minus_threshold_leaves_the_round_unrecoverable_with_a_reason()
    {
        using var h = new SecureRoundHarness(10, 6, 0, length: 64);
        h.Advertise();
        h.Share();
        h.Mask();
        h.Unmask(h.Ids.Take(5).ToArray());
        var outcome = h.Finish();
        Assert.False(outcome.Succeeded, "five shares must not unmask a threshold-6 round");
        Assert.Matches(@"only 5 shares of the self-mask seed of 'client-\d+' arrived; the threshold is 6", outcome.Failure);
    }

    [Fact]
    public void Dropouts_after_sharing_keys_have_their_pairwise_masks_removed()
    {
        using var h = new SecureRoundHarness(10, 6, 0, length: 300);
        h.Advertise("client-009"); // never heard from
        h.Share("client-008");     // advertised, then went quiet
        var dropped = new[] { "client-000", "client-003" }; // 6 inputs left: exactly the threshold
        h.Mask(dropped);           // shared keys, never sent an input
        h.Unmask();
        var outcome = h.Finish();
        Assert.True(outcome.Succeeded, outcome.Failure);
        var survivors = h.Ids.Except(dropped).Except(["client-008", "client-009"]).ToArray();
        Assert.Equal(survivors, outcome.Summed);
        Assert.Equal(h.PlainSum(survivors), outcome.Sum);
        // The dropouts' masking keys were revealed, never a survivor's.
        Assert.All(h.Revealed.Values.SelectMany(r => r.Shares).Where(s => s.Kind == ShareKind.MaskingKey), s => Assert.Contains(s.Of, dropped));
    }

    [Fact]
    public void A_coordinator_with_fewer_than_threshold_shares_unmasks_nobody()
    {
        using var h = new SecureRoundHarness(6, 4, 0, length: 128);
        h.Advertise();
        h.Share();
        h.Mask();
        h.Unmask("client-000", "client-001", "client-002"); // three responders: each secret has at most 3 shares
        var outcome = h.Finish();
        Assert.False(outcome.Succeeded, "three shares of a threshold-4 secret must not unmask");
        Assert.Null(outcome.Sum);
        // Forcing interpolation with the shares it has yields a seed that is not the client's (its commitment fails).
        var holders = h.Revealed.Keys.ToArray();
        var shares = h.Revealed.SelectMany(p => p.Value.Shares.Where(s => s.Of == "client-004")
            .Select(s => SecretShare.FromBytes(h.Round.PointOf(p.Key), s.Share))).ToList();
        Assert.Equal(3, shares.Count);
        Assert.False(ShamirTests.RecoversWithTooFew(shares, MaskGenerator.SeedBytes, guess =>
            SecureAggregationCrypto.SeedCommitment(SecureRoundHarness.Experiment, 1, "client-004", guess).AsSpan().SequenceEqual(h.Shared["client-004"].SelfMaskSeedCommitment)),
            "three shares of a threshold-4 seed must not give the seed");
        Assert.Equal(3, holders.Length);
    }

    [Fact]
    public void A_forged_or_misdirected_share_is_refused_by_the_client_that_receives_it()
    {
        using var h = new SecureRoundHarness(4, 3, 0, length: 16);
        h.Advertise();
        h.Share();
        var victim = "client-002";
        var request = h.MaskRequests[victim];

        var flipped = Clone(request);
        flipped.Shares[0].Ciphertext[20] ^= 1;
        var e = Assert.Throws<SecureAggregationException>(() => h.Clients[victim].Mask(flipped, h.Inputs[victim]));
        Assert.Contains($"the share from '{flipped.Shares[0].From}' does not authenticate", e.Message);

        // A ciphertext meant for another client, relabelled: the associated data names the real recipient.
        var misdirected = Clone(request);
        var other = h.MaskRequests["client-003"].Shares.First(s => s.From == "client-000");
        misdirected.Shares = [.. misdirected.Shares.Where(s => s.From != "client-000"), new IncomingShare { From = "client-000", Ciphertext = other.Ciphertext }];
        e = Assert.Throws<SecureAggregationException>(() => h.Clients[victim].Mask(misdirected, h.Inputs[victim]));
        Assert.Contains("does not authenticate", e.Message);

        var doubled = Clone(request);
        doubled.Shares = [.. doubled.Shares, doubled.Shares[0]];
        e = Assert.Throws<SecureAggregationException>(() => h.Clients[victim].Mask(doubled, h.Inputs[victim]));
        Assert.Contains("two shares from", e.Message);

        // The genuine request still works afterwards.
        h.Clients[victim].Mask(request, h.Inputs[victim]);
    }

    [Fact]
    public void A_share_replayed_from_an_earlier_round_is_refused()
    {
        using var earlier = new SecureRoundHarness(3, 2, 0, length: 8, round: 1);
        earlier.Advertise();
        earlier.Share();
        using var now = new SecureRoundHarness(3, 2, 0, length: 8, round: 2);
        now.Advertise();
        now.Share();
        var request = Clone(now.MaskRequests["client-001"]);
        request.Shares[0].Ciphertext = earlier.MaskRequests["client-001"].Shares.First(s => s.From == request.Shares[0].From).Ciphertext;
        var e = Assert.Throws<SecureAggregationException>(() => now.Clients["client-001"].Mask(request, now.Inputs["client-001"]));
        Assert.Contains("replayed from another round", e.Message);
    }

    [Fact]
    public void Forged_duplicated_or_replayed_unmasking_shares_are_rejected_at_the_door_with_a_reason()
    {
        using var h = new SecureRoundHarness(5, 3, 0, length: 32);
        h.Advertise();
        h.Share();
        h.Mask("client-004");
        var holder = "client-001";
        var genuine = h.Clients[holder].Unmask(h.UnmaskRequests[holder]);
        Assert.Null(SecureAggregationServer.CheckUnmask(h.Round, holder, genuine, h.Shared, h.Masked.Keys));

        var forged = CloneUnmask(genuine);
        var target = forged.Shares.First(s => s.Of == "client-002");
        var original = SecretShare.FromBytes(1, target.Share);
        target.Share = new SecretShare(1, [.. original.Values.Select(v => PrimeField.Add(v, 1))]).ToBytes();
        Assert.Equal("the self-mask seed share of 'client-002' does not match the commitment 'client-002' made (forged, or replayed from another round or holder)",
            SecureAggregationServer.CheckUnmask(h.Round, holder, forged, h.Shared, h.Masked.Keys));

        var twice = CloneUnmask(genuine);
        twice.Shares = [.. twice.Shares, twice.Shares[0]];
        Assert.StartsWith("two shares of", SecureAggregationServer.CheckUnmask(h.Round, holder, twice, h.Shared, h.Masked.Keys));

        var wrongKind = CloneUnmask(genuine);
        wrongKind.Shares.First(s => s.Of == "client-002").Kind = ShareKind.MaskingKey;
        Assert.Equal("a masking key share of 'client-002', whose fate calls for its self-mask seed",
            SecureAggregationServer.CheckUnmask(h.Round, holder, wrongKind, h.Shared, h.Masked.Keys));

        // The same holder's genuine share from an earlier round of the same clients: the commitment binds the round.
        using var earlier = new SecureRoundHarness(5, 3, 0, length: 32, round: 0, seed: 8);
        earlier.Advertise();
        earlier.Share();
        earlier.Mask("client-004");
        var old = earlier.Clients[holder].Unmask(earlier.UnmaskRequests[holder]);
        var replay = CloneUnmask(genuine);
        replay.Shares.First(s => s.Of == "client-002").Share = old.Shares.First(s => s.Of == "client-002").Share;
        Assert.Contains("does not match the commitment", SecureAggregationServer.CheckUnmask(h.Round, holder, replay, h.Shared, h.Masked.Keys));

        var stranger = CloneUnmask(genuine);
        Assert.Equal("this client's input did not arrive, so it takes no part in unmasking",
            SecureAggregationServer.CheckUnmask(h.Round, "client-004", stranger, h.Shared, h.Masked.Keys));
    }

    [Fact]
    public void A_client_never_reveals_both_secrets_of_a_neighbour()
    {
        using var h = new SecureRoundHarness(5, 3, 0, length: 8);
        h.Advertise();
        h.Share();
        h.Mask();
        var id = "client-000";
        var request = h.UnmaskRequests[id];
        var both = new UnmaskRequest { ExperimentId = request.ExperimentId, Round = request.Round, Survivors = request.Survivors, Dropped = [request.Survivors[0]] };
        var e = Assert.Throws<SecureAggregationException>(() => h.Clients[id].Unmask(both));
        Assert.Contains("both a survivor and a dropout", e.Message);
        var first = h.Clients[id].Unmask(request);
        Assert.Same(first, h.Clients[id].Unmask(request)); // a repeated request gets the same answer
        var changed = new UnmaskRequest { ExperimentId = request.ExperimentId, Round = request.Round, Survivors = request.Survivors[1..], Dropped = [request.Survivors[0]] };
        e = Assert.Throws<SecureAggregationException>(() => h.Clients[id].Unmask(changed));
        Assert.Contains("second, different unmask request", e.Message);
        var tooFew = new UnmaskRequest { ExperimentId = request.ExperimentId, Round = request.Round, Survivors = [request.Survivors[0]], Dropped = request.Survivors[1..] };
        using var fresh = new SecureRoundHarness(5, 3, 0, length: 8);
        fresh.Advertise();
        fresh.Share();
        fresh.Mask();
        e = Assert.Throws<SecureAggregationException>(() => fresh.Clients[id].Unmask(tooFew));
        Assert.Equal("only 2 survivors in this neighbourhood; the threshold is 3", e.Message);
    }

    [Fact]
    public void Invalid_public_keys_are_refused_at_the_door_and_by_clients()
    {
        using var h = new SecureRoundHarness(3, 2, 0, length: 8);
        var offCurve = new byte[64];
        offCurve[31] = 1;
        offCurve[63] = 1;
        var reason = SecureAggregationServer.CheckAdvertised(h.Round, "client-000", new AdvertisedKeys { EncryptionKey = offCurve, MaskingKey = h.Clients["client-000"].Advertise().MaskingKey });
        Assert.StartsWith("the encryption key is not a P-256 public key", reason);
        Assert.Equal("this client is not a participant of round 1", SecureAggregationServer.CheckAdvertised(h.Round, "intruder", h.Clients["client-000"].Advertise()));
        h.Advertise();
        var request = h.ShareRequests["client-001"];
        request.Neighbours[0].MaskingKey = offCurve;
        var e = Assert.Throws<SecureAggregationException>(() => h.Clients["client-001"].ShareKeys(request));
        Assert.Contains("invalid masking key", e.Message);
    }

    [Fact]
    public void One_clients_masked_vector_is_indistinguishable_from_uniform()
    {
        // The statement tested: the masked words of a client whose input is all zeros pass (1) Pearson's chi-square
        // over the 256 values of their top byte below the 0.999 quantile of chi-square(255) = 330.5, and (2) every
        // one of the 32 bit positions is set in N/2 +- 4 sqrt(N/4) of N = 65,536 words. Reproducible secrets make
        // the test deterministic. The same checks fail on the unmasked input (a ramp), so they can fail.
        const int n = 65_536;
        using var h = new SecureRoundHarness(3, 2, 0, length: n);
        h.Inputs["client-000"] = new uint[n];
        h.Advertise();
        h.Share();
        h.Mask();
        var masked = h.Masked["client-000"].Vector;
        Assert.True(LooksUniform(masked, out var why), why);
        var ramp = Enumerable.Range(0, n).Select(i => (uint)i * 977u).ToArray();
        Assert.False(LooksUniform(ramp, out _), "the checks must be able to reject a structured vector");
        Assert.InRange(Statistics.ChiSquareQuantile(255, 3.0902), 330, 331); // the tabulated 0.999 quantile is 330.52
    }

    [Fact]
    public void The_mask_generator_is_aes_256_ctr()
    {
        // Known answer: AES-256 under the all-zero key maps the all-zero block (counter 0) to dc95c078a2408989ad48a21492842087.
        var stream = new byte[32];
        MaskGenerator.Fill(new byte[32], 0, stream);
        Assert.Equal("dc95c078a2408989ad48a21492842087", Convert.ToHexStringLower(stream[..16]));
        var words = MaskGenerator.Generate(new byte[32], 8);
        Assert.Equal(BitConverter.ToUInt32(stream, 0), words[0]);
        Assert.Equal(BitConverter.ToUInt32(stream, 28), words[7]);
        var x = Enumerable.Range(0, 100_000).Select(i => (uint)i).ToArray();
        var y = x.ToArray();
        var seed = Enumerable.Range(1, 32).Select(i => (byte)i).ToArray();
        MaskGenerator.Add(seed, y);
        Assert.NotEqual(x, y);
        MaskGenerator.Subtract(seed, y);
        Assert.Equal(x, y);
    }

    private static bool LooksUniform(uint[] words, out string why)
    {
        var counts = new long[256];
        var bits = new long[32];
        foreach (var w in words)
        {
            counts[w >> 24]++;
            for (int b = 0; b < 32; b++)
                bits[b] += (w >> b) & 1;
        }
        double chi = Statistics.ChiSquareUniform(counts);
        double mean = words.Length / 2.0, tolerance = 4 * Math.Sqrt(words.Length / 4.0);
        var skewed = Enumerable.Range(0, 32).Where(b => Math.Abs(bits[b] - mean) > tolerance).ToList();
        why = $"chi-square of the top byte {chi:F1} (limit 330.5); bits outside {mean} +- {tolerance:F0}: {string.Join(",", skewed)}";
        return chi < 330.5 && skewed.Count == 0;
    }

    private static MaskedInputRequest Clone(MaskedInputRequest r) =>
        Wire.Deserialize<MaskedInputRequest>(Wire.Serialize(r));

    private static UnmaskResponse CloneUnmask(UnmaskResponse r) =>
        Wire.Deserialize<UnmaskResponse>(Wire.Serialize(r));
}
