using System.Security.Cryptography;

namespace Ferret.Core.Privacy;

/// <summary>The outcome of unmasking: the sum over the surviving inputs, or why it could not be recovered.</summary>
public sealed record UnmaskOutcome(uint[]? Sum, IReadOnlyList<string> Summed, string? Failure)
{
    public bool Succeeded => Sum is not null;
}

/// <summary>
/// The coordinator's side of secure aggregation, as pure functions of the messages it has collected, so that a
/// coordinator restarted mid-round recomputes every step from its log. It routes public keys and encrypted
/// shares, checks each message at the door (with a reason), and finally removes the masks: the self masks of
/// the inputs that arrived and the pairwise masks those inputs share with clients that dropped out after sharing
/// keys. It never holds more than the protocol hands it: public keys, ciphertexts, commitments, masked inputs and
/// one revealed share per (holder, dealer).
/// </summary>
public static class SecureAggregationServer
{
    private const int MaxCiphertextBytes = 1024;

    /// <summary>Door check of stage 0.</summary>
    public static string? CheckAdvertised(SecureRound round, string client, AdvertisedKeys keys)
    {
        ArgumentNullException.ThrowIfNull(round);
        ArgumentNullException.ThrowIfNull(keys);
        if (!round.IsParticipant(client))
            return $"this client is not a participant of round {round.Round}";
        if (AgreementKeyPair.Validate(keys.EncryptionKey) is { } enc)
            return $"the encryption key is not a P-256 public key: {enc}";
        if (AgreementKeyPair.Validate(keys.MaskingKey) is { } mask)
            return $"the masking key is not a P-256 public key: {mask}";
        if (keys.EncryptionKey.AsSpan().SequenceEqual(keys.MaskingKey))
            return "the encryption and masking keys are the same key";
        return null;
    }

    /// <summary>Stage 0 to 1: each client that advertised gets the keys of its neighbours that advertised.</summary>
    public static Dictionary<string, ShareKeysRequest> ShareKeysRequests(SecureRound round, IReadOnlyDictionary<string, AdvertisedKeys> advertised, DateTimeOffset deadlineUtc)
    {
        ArgumentNullException.ThrowIfNull(round);
        ArgumentNullException.ThrowIfNull(advertised);
        var requests = new Dictionary<string, ShareKeysRequest>(StringComparer.Ordinal);
        foreach (var client in advertised.Keys.Order(StringComparer.Ordinal))
        {
            requests[client] = new ShareKeysRequest
            {
                ExperimentId = round.ExperimentId,
                Round = round.Round,
                Threshold = round.Threshold,
                Point = round.PointOf(client),
                DeadlineUtc = deadlineUtc,
                Neighbours = round.NeighboursOf(client).Where(advertised.ContainsKey).Order(StringComparer.Ordinal)
                    .Select(v => new NeighbourKeys { ClientId = v, Point = round.PointOf(v), EncryptionKey = advertised[v].EncryptionKey, MaskingKey = advertised[v].MaskingKey })
                    .ToArray(),
            };
        }
        return requests;
    }

    /// <summary>Door check of stage 1: exactly one share for each neighbour that advertised, with well-formed commitments.</summary>
    public static string? CheckShares(SecureRound round, string client, ShareKeysResponse response, IReadOnlyDictionary<string, AdvertisedKeys> advertised)
    {
        ArgumentNullException.ThrowIfNull(round);
        ArgumentNullException.ThrowIfNull(response);
        ArgumentNullException.ThrowIfNull(advertised);
        if (!advertised.ContainsKey(client))
            return "this client did not advertise keys in this round";
        var expected = round.NeighboursOf(client).Where(advertised.ContainsKey).ToHashSet(StringComparer.Ordinal);
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var s in response.Shares)
        {
            if (!expected.Contains(s.To))
                return $"a share for '{s.To}', who is not an advertised neighbour";
            if (!seen.Add(s.To))
                return $"two shares for '{s.To}'";
            if (s.Ciphertext.Length is < 29 or > MaxCiphertextBytes)
                return $"the share for '{s.To}' is {s.Ciphertext.Length} bytes";
            if (s.SelfMaskCommitment.Length != SHA256.HashSizeInBytes || s.MaskingKeyCommitment.Length != SHA256.HashSizeInBytes)
                return $"the commitments for '{s.To}' are not SHA-256 digests";
        }
        if (seen.Count != expected.Count)
            return $"{seen.Count} shares for {expected.Count} advertised neighbours";
        if (response.SelfMaskSeedCommitment.Length != SHA256.HashSizeInBytes || response.OwnShareCommitment.Length != SHA256.HashSizeInBytes)
            return "the self-mask commitments are not SHA-256 digests";
        return null;
    }

    /// <summary>Stage 1 to 2: each client that shared receives the ciphertexts addressed to it by neighbours that shared.</summary>
    public static Dictionary<string, MaskedInputRequest> MaskedInputRequests(SecureRound round, IReadOnlyDictionary<string, ShareKeysResponse> shared, DateTimeOffset deadlineUtc)
    {
        ArgumentNullException.ThrowIfNull(round);
        ArgumentNullException.ThrowIfNull(shared);
        var inbox = shared.Keys.ToDictionary(c => c, _ => new List<IncomingShare>(), StringComparer.Ordinal);
        foreach (var (from, response) in shared.OrderBy(p => p.Key, StringComparer.Ordinal))
        {
            foreach (var s in response.Shares)
            {
                if (inbox.TryGetValue(s.To, out var list))
                    list.Add(new IncomingShare { From = from, Ciphertext = s.Ciphertext });
            }
        }
        return inbox.ToDictionary(p => p.Key, p => new MaskedInputRequest
        {
            ExperimentId = round.ExperimentId,
            Round = round.Round,
            Shares = [.. p.Value],
            DeadlineUtc = deadlineUtc,
        }, StringComparer.Ordinal);
    }

    /// <summary>Door check of stage 2.</summary>
    public static string? CheckMaskedInput(SecureRound round, string client, MaskedInput input, IReadOnlyDictionary<string, ShareKeysResponse> shared)
    {
        ArgumentNullException.ThrowIfNull(round);
        ArgumentNullException.ThrowIfNull(input);
        ArgumentNullException.ThrowIfNull(shared);
        if (input.Version != MaskedInput.CurrentVersion)
            return $"masked input version {input.Version} is not {MaskedInput.CurrentVersion}";
        if (input.ExperimentId != round.ExperimentId || input.Round != round.Round)
            return $"the masked input is for {input.ExperimentId} round {input.Round}, not {round.ExperimentId} round {round.Round}";
        if (!shared.ContainsKey(client))
            return "this client did not share keys in this round, so its input could not be unmasked";
        if (input.Vector.Length != round.VectorLength)
            return $"the masked input has {input.Vector.Length} words; the round sums {round.VectorLength}";
        return null;
    }

    /// <summary>Stage 2 to 3: each client whose input arrived learns which of its sharing neighbours survived and which dropped.</summary>
    public static Dictionary<string, UnmaskRequest> UnmaskRequests(SecureRound round, IEnumerable<string> shared, IEnumerable<string> survivors, DateTimeOffset deadlineUtc)
    {
        ArgumentNullException.ThrowIfNull(round);
        ArgumentNullException.ThrowIfNull(shared);
        ArgumentNullException.ThrowIfNull(survivors);
        var u2 = shared.ToHashSet(StringComparer.Ordinal);
        var u3 = survivors.ToHashSet(StringComparer.Ordinal);
        return u3.Order(StringComparer.Ordinal).ToDictionary(c => c, c =>
        {
            var around = round.NeighboursOf(c).Where(u2.Contains).Order(StringComparer.Ordinal).ToArray();
            return new UnmaskRequest
            {
                ExperimentId = round.ExperimentId,
                Round = round.Round,
                Survivors = around.Where(u3.Contains).ToArray(),
                Dropped = around.Where(v => !u3.Contains(v)).ToArray(),
                DeadlineUtc = deadlineUtc,
            };
        }, StringComparer.Ordinal);
    }

    /// <summary>
    /// Door check of stage 3: one share per sharing neighbour, of the kind its fate calls for, each matching the
    /// commitment its dealer published for this holder. A forged share, or one replayed from another round or
    /// holder, fails the commitment.
    /// </summary>
    public static string? CheckUnmask(SecureRound round, string holder, UnmaskResponse response, IReadOnlyDictionary<string, ShareKeysResponse> shared,
        IEnumerable<string> survivors)
    {
        ArgumentNullException.ThrowIfNull(round);
        ArgumentNullException.ThrowIfNull(response);
        ArgumentNullException.ThrowIfNull(shared);
        ArgumentNullException.ThrowIfNull(survivors);
        var u3 = survivors.ToHashSet(StringComparer.Ordinal);
        if (!u3.Contains(holder))
            return "this client's input did not arrive, so it takes no part in unmasking";
        var expected = round.NeighboursOf(holder).Where(shared.ContainsKey).Append(holder).ToHashSet(StringComparer.Ordinal);
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var r in response.Shares)
        {
            if (r.Of == holder)
            {
                if (!seen.Add(holder))
                    return "two shares of this client's own seed (replay)";
                if (r.Kind != ShareKind.SelfMask)
                    return "a client never reveals its own masking key";
                var own = SecureAggregationCrypto.Commitment(round.ExperimentId, round.Round, holder, holder, ShareKind.SelfMask, r.Share);
                if (!CryptographicOperations.FixedTimeEquals(own, shared[holder].OwnShareCommitment))
                    return "this client's share of its own self-mask seed does not match its commitment (forged)";
                continue;
            }
            if (!expected.Contains(r.Of))
                return $"a share of '{r.Of}', who did not deal this client a share";
            if (!seen.Add(r.Of))
                return $"two shares of '{r.Of}' (replay)";
            var want = u3.Contains(r.Of) ? ShareKind.SelfMask : ShareKind.MaskingKey;
            if (r.Kind != want)
                return $"a {Describe(r.Kind)} share of '{r.Of}', whose fate calls for its {Describe(want)}";
            var dealt = shared[r.Of].Shares.FirstOrDefault(s => s.To == holder);
            if (dealt is null)
                return $"'{r.Of}' dealt this client no share";
            var commitment = r.Kind == ShareKind.SelfMask ? dealt.SelfMaskCommitment : dealt.MaskingKeyCommitment;
            var actual = SecureAggregationCrypto.Commitment(round.ExperimentId, round.Round, r.Of, holder, r.Kind, r.Share);
            if (!CryptographicOperations.FixedTimeEquals(actual, commitment))
                return $"the {Describe(r.Kind)} share of '{r.Of}' does not match the commitment '{r.Of}' made (forged, or replayed from another round or holder)";
        }
        if (seen.Count != expected.Count)
            return $"{seen.Count} shares for {expected.Count - 1} sharing neighbours and this client's own";
        return null;
    }

    /// <summary>
    /// Removes the masks: <c>sum_u y_u - sum_u PRG(b_u) - sum_(dropped v) sum_(u ~ v) +-PRG(s_uv)</c> over the
    /// inputs that arrived. Every secret needs t checked shares; fewer, and the round cannot be unmasked.
    /// </summary>
    public static UnmaskOutcome Unmask(SecureRound round, IReadOnlyDictionary<string, AdvertisedKeys> advertised, IReadOnlyDictionary<string, ShareKeysResponse> shared,
        IReadOnlyDictionary<string, MaskedInput> inputs, IReadOnlyDictionary<string, UnmaskResponse> revealed)
    {
        ArgumentNullException.ThrowIfNull(round);
        ArgumentNullException.ThrowIfNull(advertised);
        ArgumentNullException.ThrowIfNull(shared);
        ArgumentNullException.ThrowIfNull(inputs);
        ArgumentNullException.ThrowIfNull(revealed);
        var survivors = inputs.Keys.Order(StringComparer.Ordinal).ToList();
        if (survivors.Count < round.Threshold)
            return new UnmaskOutcome(null, survivors, $"only {survivors.Count} masked inputs arrived; the threshold is {round.Threshold}");
        var sharesOf = new Dictionary<(string Dealer, ShareKind Kind), List<SecretShare>>();
        foreach (var (holder, response) in revealed.OrderBy(p => p.Key, StringComparer.Ordinal))
        {
            foreach (var r in response.Shares)
            {
                if (!sharesOf.TryGetValue((r.Of, r.Kind), out var list))
                    sharesOf[(r.Of, r.Kind)] = list = [];
                list.Add(SecretShare.FromBytes(round.PointOf(holder), r.Share));
            }
        }
        var sum = new uint[round.VectorLength];
        foreach (var u in survivors)
            System.Numerics.Tensors.TensorPrimitives.Add(sum, inputs[u].Vector, sum);
        try
        {
            foreach (var u in survivors)
            {
                var seed = Recover(sharesOf, u, ShareKind.SelfMask, round.Threshold, MaskGenerator.SeedBytes);
                var commitment = SecureAggregationCrypto.SeedCommitment(round.ExperimentId, round.Round, u, seed);
                if (!CryptographicOperations.FixedTimeEquals(commitment, shared[u].SelfMaskSeedCommitment))
                    return new UnmaskOutcome(null, survivors, $"the self-mask seed of '{u}' rebuilt from its shares does not match its commitment");
                MaskGenerator.Subtract(seed, sum);
            }
            var inputSet = survivors.ToHashSet(StringComparer.Ordinal);
            foreach (var v in shared.Keys.Where(c => !inputSet.Contains(c)).Order(StringComparer.Ordinal))
            {
                var scalar = Recover(sharesOf, v, ShareKind.MaskingKey, round.Threshold, AgreementKeyPair.PrivateKeyBytes);
                using var key = AgreementKeyPair.FromPrivateScalar(scalar, advertised[v].MaskingKey);
                foreach (var u in round.NeighboursOf(v).Where(inputSet.Contains).Order(StringComparer.Ordinal))
                {
                    var seed = SecureAggregationCrypto.MaskSeed(key.Agree(advertised[u].MaskingKey), round.ExperimentId, round.Round, u, v);
                    // u added sign(u, v) * PRG(s_uv); take it back out.
                    if (SecureRound.MaskSign(u, v) > 0)
                        MaskGenerator.Subtract(seed, sum);
                    else
                        MaskGenerator.Add(seed, sum);
                }
            }
        }
        catch (SecureAggregationException e)
        {
            return new UnmaskOutcome(null, survivors, e.Message);
        }
        catch (InvalidDataException e)
        {
            return new UnmaskOutcome(null, survivors, e.Message);
        }
        return new UnmaskOutcome(sum, survivors, null);
    }

    private static byte[] Recover(Dictionary<(string, ShareKind), List<SecretShare>> sharesOf, string dealer, ShareKind kind, int threshold, int bytes)
    {
        int have = sharesOf.TryGetValue((dealer, kind), out var list) ? list.Count : 0;
        if (have < threshold)
            throw new SecureAggregationException($"only {have} shares of the {Describe(kind)} of '{dealer}' arrived; the threshold is {threshold}");
        return ShamirSecretSharing.Reconstruct(list!, threshold, bytes, verifyAll: false);
    }

    private static string Describe(ShareKind kind) => kind == ShareKind.SelfMask ? "self-mask seed" : "masking key";
}
