using Ferret.Core.Packets;
using MessagePack;

namespace Ferret.Core.Privacy;

/// <summary>The stages of a secure-aggregation round (Bonawitz et al. 2017), in order.</summary>
public enum SecureStage
{
    /// <summary>Clients advertise two public keys: one to encrypt shares, one to agree on masks.</summary>
    AdvertiseKeys,

    /// <summary>Clients secret-share their self-mask seed and masking key among their neighbours, encrypted.</summary>
    ShareKeys,

    /// <summary>Clients send their quantized, masked input.</summary>
    MaskedInput,

    /// <summary>Survivors reveal shares: self-mask seeds of survivors, masking keys of clients that dropped out.</summary>
    Unmasking,
}

/// <summary>Which of a dealer's two secrets a share belongs to.</summary>
public enum ShareKind : byte
{
    /// <summary>The self-mask seed b (revealed for clients whose masked input arrived).</summary>
    SelfMask = 0,

    /// <summary>The masking private key (revealed for clients that dropped out after sharing).</summary>
    MaskingKey = 1,
}

/// <summary>Stage 0, client to coordinator: the round's two fresh public keys.</summary>
[MessagePackObject]
public sealed class AdvertisedKeys
{
    /// <summary>P-256 public key (X || Y) for the share encryption keys.</summary>
    [Key(0)]
    public byte[] EncryptionKey { get; set; } = [];

    /// <summary>P-256 public key (X || Y) for the pairwise masks.</summary>
    [Key(1)]
    public byte[] MaskingKey { get; set; } = [];
}

/// <summary>A neighbour's identity, Shamir point and advertised keys.</summary>
[MessagePackObject]
public sealed class NeighbourKeys
{
    [Key(0)]
    public string ClientId { get; set; } = "";

    /// <summary>The neighbour's Shamir point x (1-based position among the round's assigned clients).</summary>
    [Key(1)]
    public int Point { get; set; }

    [Key(2)]
    public byte[] EncryptionKey { get; set; } = [];

    [Key(3)]
    public byte[] MaskingKey { get; set; } = [];
}

/// <summary>Stage 1, coordinator to client: the keys of its neighbours that advertised.</summary>
[MessagePackObject]
public sealed class ShareKeysRequest
{
    [Key(0)]
    public string ExperimentId { get; set; } = "";

    [Key(1)]
    public int Round { get; set; }

    /// <summary>Shares needed to reconstruct a secret.</summary>
    [Key(2)]
    public int Threshold { get; set; }

    [Key(3)]
    public NeighbourKeys[] Neighbours { get; set; } = [];

    [Key(4)]
    public DateTimeOffset DeadlineUtc { get; set; }

    /// <summary>This client's own Shamir point: it keeps one share of its self-mask seed, revealed when it unmasks.</summary>
    [Key(5)]
    public int Point { get; set; }
}

/// <summary>One share bundle for one neighbour, encrypted to it, with commitments to the two shares inside.</summary>
[MessagePackObject]
public sealed class EncryptedShare
{
    [Key(0)]
    public string To { get; set; } = "";

    /// <summary>AES-256-GCM: nonce || ciphertext || tag.</summary>
    [Key(1)]
    public byte[] Ciphertext { get; set; } = [];

    [Key(2)]
    public byte[] SelfMaskCommitment { get; set; } = [];

    [Key(3)]
    public byte[] MaskingKeyCommitment { get; set; } = [];
}

/// <summary>Stage 1, client to coordinator: its encrypted shares for every neighbour and a commitment to its self-mask seed.</summary>
[MessagePackObject]
public sealed class ShareKeysResponse
{
    [Key(0)]
    public EncryptedShare[] Shares { get; set; } = [];

    [Key(1)]
    public byte[] SelfMaskSeedCommitment { get; set; } = [];

    /// <summary>Commitment to the share of its self-mask seed the client keeps for itself.</summary>
    [Key(2)]
    public byte[] OwnShareCommitment { get; set; } = [];
}

/// <summary>A share bundle addressed to this client.</summary>
[MessagePackObject]
public sealed class IncomingShare
{
    [Key(0)]
    public string From { get; set; } = "";

    [Key(1)]
    public byte[] Ciphertext { get; set; } = [];
}

/// <summary>Stage 2, coordinator to client: the shares its neighbours sent it; their senders are the neighbours to mask with.</summary>
[MessagePackObject]
public sealed class MaskedInputRequest
{
    [Key(0)]
    public string ExperimentId { get; set; } = "";

    [Key(1)]
    public int Round { get; set; }

    [Key(2)]
    public IncomingShare[] Shares { get; set; } = [];

    [Key(3)]
    public DateTimeOffset DeadlineUtc { get; set; }
}

/// <summary>Stage 2, client to coordinator: the quantized input plus the self mask and the pairwise masks, modulo 2^32.</summary>
[MessagePackObject]
public sealed class MaskedInput
{
    public const int CurrentVersion = 1;

    [Key(0)]
    public int Version { get; set; } = CurrentVersion;

    [Key(1)]
    public string ExperimentId { get; set; } = "";

    [Key(2)]
    public int Round { get; set; }

    [Key(3)]
    [MessagePackFormatter(typeof(RawUInt32Formatter))]
    public uint[] Vector { get; set; } = [];

    /// <summary>Passes and compute time only: the loss travels inside the masked sum.</summary>
    [Key(4)]
    public TrainingStats Stats { get; set; } = new();
}

/// <summary>Stage 3, coordinator to client: which of its neighbours' inputs arrived and which dropped out.</summary>
[MessagePackObject]
public sealed class UnmaskRequest
{
    [Key(0)]
    public string ExperimentId { get; set; } = "";

    [Key(1)]
    public int Round { get; set; }

    [Key(2)]
    public string[] Survivors { get; set; } = [];

    [Key(3)]
    public string[] Dropped { get; set; } = [];

    [Key(4)]
    public DateTimeOffset DeadlineUtc { get; set; }
}

/// <summary>One share revealed for unmasking.</summary>
[MessagePackObject]
public sealed class RevealedShare
{
    /// <summary>The dealer whose secret this is a share of.</summary>
    [Key(0)]
    public string Of { get; set; } = "";

    [Key(1)]
    public ShareKind Kind { get; set; }

    [Key(2)]
    public byte[] Share { get; set; } = [];
}

/// <summary>Stage 3, client to coordinator: one share per neighbour, of exactly the kind the request called for.</summary>
[MessagePackObject]
public sealed class UnmaskResponse
{
    [Key(0)]
    public RevealedShare[] Shares { get; set; } = [];
}

/// <summary>What travels inside an encrypted share: both shares a dealer gives one holder.</summary>
[MessagePackObject]
public sealed class SharePayload
{
    [Key(0)]
    public string From { get; set; } = "";

    [Key(1)]
    public string To { get; set; } = "";

    [Key(2)]
    public byte[] SelfMaskShare { get; set; } = [];

    [Key(3)]
    public byte[] MaskingKeyShare { get; set; } = [];
}
