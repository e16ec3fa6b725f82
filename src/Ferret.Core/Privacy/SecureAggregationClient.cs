using Ferret.Core.Packets;

namespace Ferret.Core.Privacy;

/// <summary>
/// One client's side of one secure-aggregation round (Bonawitz et al. 2017, with SecAgg+ neighbourhoods): two
/// fresh P-256 key pairs, a self-mask seed b shared with its neighbours by Shamir together with its masking key,
/// the masked input <c>y = x + PRG(b) + sum_v +-PRG(s_uv)</c> modulo 2^32, and, at the end, one share per
/// neighbour: of b when that neighbour's input arrived, of its masking key when it dropped out, never both.
/// Every step checks what it is handed and refuses with a reason (<see cref="SecureAggregationException"/>);
/// a repeated request (after a reconnect) gets the same answer, a conflicting one is refused.
/// </summary>
public sealed class SecureAggregationClient : IDisposable
{
    private readonly ISecretSource _secrets;
    private readonly AgreementKeyPair _encryption;
    private readonly AgreementKeyPair _masking;
    private readonly Lock _gate = new();
    private Dictionary<string, NeighbourKeys>? _neighbours;
    private readonly Dictionary<string, (AgreementPublicKey Encryption, AgreementPublicKey Masking)> _imported = new(StringComparer.Ordinal);
    private int _threshold;
    private byte[]? _selfMaskSeed;
    private byte[]? _ownSeedShare;
    private byte[]? _shareRequestDigest;
    private ShareKeysResponse? _shareResponse;
    private Dictionary<string, SharePayload>? _held;
    private MaskedInput? _masked;
    private (HashSet<string> Survivors, HashSet<string> Dropped)? _unmaskedFor;
    private UnmaskResponse? _unmaskResponse;

    public SecureAggregationClient(string experimentId, int round, string clientId, int vectorLength, ISecretSource? secrets = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(experimentId);
        ArgumentException.ThrowIfNullOrEmpty(clientId);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(vectorLength);
        ExperimentId = experimentId;
        Round = round;
        ClientId = clientId;
        VectorLength = vectorLength;
        _secrets = secrets ?? PlatformSecrets.Instance;
        _encryption = _secrets.NewKeyPair();
        _masking = _secrets.NewKeyPair();
    }

    public string ExperimentId { get; }

    public int Round { get; }

    public string ClientId { get; }

    public int VectorLength { get; }

    /// <summary>The next stage this client expects.</summary>
    public SecureStage Stage { get; private set; } = SecureStage.AdvertiseKeys;

    /// <summary>Stage 0: the round's two public keys (the same on every call).</summary>
    public AdvertisedKeys Advertise()
    {
        lock (_gate)
        {
            if (Stage == SecureStage.AdvertiseKeys)
                Stage = SecureStage.ShareKeys;
            return new AdvertisedKeys { EncryptionKey = _encryption.PublicKey, MaskingKey = _masking.PublicKey };
        }
    }

    /// <summary>Stage 1: Shamir shares of the self-mask seed and the masking key for every neighbour, each encrypted to it.</summary>
    public ShareKeysResponse ShareKeys(ShareKeysRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        lock (_gate)
        {
            CheckFrame(request.ExperimentId, request.Round);
            var digest = MessagePack.MessagePackSerializer.Serialize(request.Neighbours, Wire.Options);
            if (_shareResponse is not null)
            {
                return digest.AsSpan().SequenceEqual(_shareRequestDigest)
                    ? _shareResponse
                    : throw new SecureAggregationException("a second, different share-keys request for the same round");
            }
            if (Stage != SecureStage.ShareKeys)
                throw new SecureAggregationException($"a share-keys request arrived at stage {Stage}");
            var neighbours = new Dictionary<string, NeighbourKeys>(StringComparer.Ordinal);
            var points = new HashSet<int>();
            foreach (var n in request.Neighbours)
            {
                if (n.ClientId == ClientId)
                    throw new SecureAggregationException("the neighbour list contains this client itself");
                if (!neighbours.TryAdd(n.ClientId, n))
                    throw new SecureAggregationException($"neighbour '{n.ClientId}' is listed twice");
                if (n.Point <= 0 || !points.Add(n.Point))
                    throw new SecureAggregationException($"neighbour '{n.ClientId}' has point {n.Point}, which is not positive or not unique");
                var encryption = AgreementPublicKey.TryImport(n.EncryptionKey, out var badEnc)
                    ?? throw new SecureAggregationException($"neighbour '{n.ClientId}' advertised an invalid encryption key: {badEnc}");
                var masking = AgreementPublicKey.TryImport(n.MaskingKey, out var badMask);
                if (masking is null)
                {
                    encryption.Dispose();
                    throw new SecureAggregationException($"neighbour '{n.ClientId}' advertised an invalid masking key: {badMask}");
                }
                if (_imported.Remove(n.ClientId, out var stale))
                {
                    stale.Encryption.Dispose();
                    stale.Masking.Dispose();
                }
                _imported[n.ClientId] = (encryption, masking);
            }
            if (request.Point <= 0 || points.Contains(request.Point))
                throw new SecureAggregationException($"this client's point {request.Point} is not positive or collides with a neighbour's");
            if (request.Threshold < 2)
                throw new SecureAggregationException($"threshold {request.Threshold} is below 2");
            if (neighbours.Count + 1 < request.Threshold)
                throw new SecureAggregationException($"only {neighbours.Count} neighbours advertised keys; with this client that is below the threshold of {request.Threshold}");

            var seed = new byte[MaskGenerator.SeedBytes];
            _secrets.Fill(seed);
            var order = neighbours.Values.OrderBy(n => n.Point).ToArray();
            // The last point is this client's own: it keeps that share of its seed (never of its key, which only a dropout's neighbours reveal).
            int[] xs = [.. order.Select(n => n.Point), request.Point];
            var seedShares = ShamirSecretSharing.Split(seed, request.Threshold, xs, _secrets);
            var keyShares = ShamirSecretSharing.Split(_masking.ExportPrivateScalar(), request.Threshold, xs, _secrets);
            _ownSeedShare = seedShares[^1].ToBytes();
            var shares = new EncryptedShare[order.Length];
            for (int i = 0; i < order.Length; i++)
            {
                var to = order[i].ClientId;
                var payload = new SharePayload
                {
                    From = ClientId,
                    To = to,
                    SelfMaskShare = seedShares[i].ToBytes(),
                    MaskingKeyShare = keyShares[i].ToBytes(),
                };
                var key = SecureAggregationCrypto.ShareKey(_encryption.Agree(_imported[to].Encryption), ExperimentId, Round, ClientId, to);
                shares[i] = new EncryptedShare
                {
                    To = to,
                    Ciphertext = SecureAggregationCrypto.Encrypt(key, Wire.Serialize(payload), ExperimentId, Round, ClientId, to, _secrets),
                    SelfMaskCommitment = SecureAggregationCrypto.Commitment(ExperimentId, Round, ClientId, to, ShareKind.SelfMask, payload.SelfMaskShare),
                    MaskingKeyCommitment = SecureAggregationCrypto.Commitment(ExperimentId, Round, ClientId, to, ShareKind.MaskingKey, payload.MaskingKeyShare),
                };
            }
            _neighbours = neighbours;
            _threshold = request.Threshold;
            _selfMaskSeed = seed;
            _shareRequestDigest = digest;
            _shareResponse = new ShareKeysResponse
            {
                Shares = shares,
                SelfMaskSeedCommitment = SecureAggregationCrypto.SeedCommitment(ExperimentId, Round, ClientId, seed),
                OwnShareCommitment = SecureAggregationCrypto.Commitment(ExperimentId, Round, ClientId, ClientId, ShareKind.SelfMask, _ownSeedShare),
            };
            Stage = SecureStage.MaskedInput;
            return _shareResponse;
        }
    }

    /// <summary>
    /// Stage 2: decrypts and checks the shares addressed to this client (their senders are the neighbours still in
    /// the round), then masks the quantized input with the self mask and one pairwise mask per such neighbour.
    /// </summary>
    public MaskedInput Mask(MaskedInputRequest request, ReadOnlySpan<uint> input, TrainingStats? stats = null)
    {
        ArgumentNullException.ThrowIfNull(request);
        lock (_gate)
        {
            CheckFrame(request.ExperimentId, request.Round);
            if (_masked is not null)
                return _masked;
            if (Stage != SecureStage.MaskedInput || _neighbours is null || _selfMaskSeed is null)
                throw new SecureAggregationException($"a masked-input request arrived at stage {Stage}");
            if (input.Length != VectorLength)
                throw new ArgumentException($"The input has {input.Length} words; the round sums {VectorLength}.", nameof(input));
            var held = new Dictionary<string, SharePayload>(StringComparer.Ordinal);
            foreach (var incoming in request.Shares)
            {
                if (!_neighbours.TryGetValue(incoming.From, out var sender))
                    throw new SecureAggregationException($"a share from '{incoming.From}', who is not a neighbour of this client");
                if (held.ContainsKey(incoming.From))
                    throw new SecureAggregationException($"two shares from '{incoming.From}' (replay)");
                var key = SecureAggregationCrypto.ShareKey(_encryption.Agree(_imported[incoming.From].Encryption), ExperimentId, Round, incoming.From, ClientId);
                var plain = SecureAggregationCrypto.Decrypt(key, incoming.Ciphertext, ExperimentId, Round, incoming.From, ClientId)
                    ?? throw new SecureAggregationException($"the share from '{incoming.From}' does not authenticate (forged, altered, or replayed from another round or recipient)");
                SharePayload payload;
                try
                {
                    payload = Wire.Deserialize<SharePayload>(plain);
                    SecretShare.FromBytes(sender.Point, payload.SelfMaskShare);
                    SecretShare.FromBytes(sender.Point, payload.MaskingKeyShare);
                }
                catch (InvalidDataException e)
                {
                    throw new SecureAggregationException($"the share from '{incoming.From}' is malformed: {e.Message}", e);
                }
                if (payload.From != incoming.From || payload.To != ClientId)
                    throw new SecureAggregationException($"the share from '{incoming.From}' names {payload.From} -> {payload.To}");
                held[incoming.From] = payload;
            }
            if (held.Count + 1 < _threshold)
                throw new SecureAggregationException($"only {held.Count} neighbours shared their keys; with this client that is below the threshold of {_threshold}");

            var y = input.ToArray();
            MaskGenerator.Add(_selfMaskSeed, y);
            foreach (var v in held.Keys)
            {
                var seed = SecureAggregationCrypto.MaskSeed(_masking.Agree(_imported[v].Masking), ExperimentId, Round, ClientId, v);
                if (SecureRound.MaskSign(ClientId, v) > 0)
                    MaskGenerator.Add(seed, y);
                else
                    MaskGenerator.Subtract(seed, y);
            }
            _held = held;
            var s = stats ?? new TrainingStats();
            _masked = new MaskedInput
            {
                ExperimentId = ExperimentId,
                Round = Round,
                Vector = y,
                Stats = new TrainingStats { ForwardPasses = s.ForwardPasses, BackwardPasses = s.BackwardPasses, ComputeSeconds = s.ComputeSeconds, Loss = double.NaN },
            };
            Stage = SecureStage.Unmasking;
            return _masked;
        }
    }

    /// <summary>
    /// Stage 3: for every neighbour still in the round, exactly one share: of its self-mask seed when its input
    /// arrived, of its masking key when it dropped out; and its own share of its own self-mask seed. The request must account for every such neighbour and keep
    /// at least t - 1 of them (with this client, t survivors); a different request later is refused.
    /// </summary>
    public UnmaskResponse Unmask(UnmaskRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        lock (_gate)
        {
            CheckFrame(request.ExperimentId, request.Round);
            if (_held is null)
                throw new SecureAggregationException($"an unmask request arrived at stage {Stage}");
            var survivors = request.Survivors.ToHashSet(StringComparer.Ordinal);
            var dropped = request.Dropped.ToHashSet(StringComparer.Ordinal);
            if (_unmaskedFor is { } earlier)
            {
                return earlier.Survivors.SetEquals(survivors) && earlier.Dropped.SetEquals(dropped)
                    ? _unmaskResponse!
                    : throw new SecureAggregationException("a second, different unmask request (it could reveal both secrets of a neighbour)");
            }
            if (survivors.Count != request.Survivors.Length || dropped.Count != request.Dropped.Length)
                throw new SecureAggregationException("the unmask request lists a client twice");
            if (survivors.Overlaps(dropped))
                throw new SecureAggregationException($"the unmask request calls '{survivors.Intersect(dropped).First()}' both a survivor and a dropout");
            foreach (var c in survivors.Concat(dropped))
            {
                if (!_held.ContainsKey(c))
                    throw new SecureAggregationException($"the unmask request names '{c}', who did not share keys with this client");
            }
            foreach (var c in _held.Keys)
            {
                if (!survivors.Contains(c) && !dropped.Contains(c))
                    throw new SecureAggregationException($"the unmask request does not say whether '{c}' survived");
            }
            if (survivors.Count + 1 < _threshold)
                throw new SecureAggregationException($"only {survivors.Count + 1} survivors in this neighbourhood; the threshold is {_threshold}");
            var shares = _held.Keys.Order(StringComparer.Ordinal).Select(c => survivors.Contains(c)
                ? new RevealedShare { Of = c, Kind = ShareKind.SelfMask, Share = _held[c].SelfMaskShare }
                : new RevealedShare { Of = c, Kind = ShareKind.MaskingKey, Share = _held[c].MaskingKeyShare })
                .Append(new RevealedShare { Of = ClientId, Kind = ShareKind.SelfMask, Share = _ownSeedShare! }).ToArray();
            _unmaskedFor = (survivors, dropped);
            _unmaskResponse = new UnmaskResponse { Shares = shares };
            return _unmaskResponse;
        }
    }

    private void CheckFrame(string experimentId, int round)
    {
        if (experimentId != ExperimentId || round != Round)
            throw new SecureAggregationException($"a message for {experimentId} round {round} reached the session of {ExperimentId} round {Round}");
    }

    public void Dispose()
    {
        _encryption.Dispose();
        _masking.Dispose();
        foreach (var (e, m) in _imported.Values)
        {
            e.Dispose();
            m.Dispose();
        }
        _imported.Clear();
    }
}
