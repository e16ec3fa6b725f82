using System.Security.Cryptography;

namespace Ferret.Core.Privacy;

/// <summary>
/// Where a participant's secrets come from: random bytes (self-mask seeds, polynomial coefficients, nonces,
/// noise) and key pairs. Deployments use <see cref="PlatformSecrets"/>; simulations and tests may use
/// <see cref="SeededSecrets"/> so a run reproduces.
/// </summary>
public interface ISecretSource
{
    void Fill(Span<byte> destination);

    AgreementKeyPair NewKeyPair();
}

/// <summary>The operating system's CSPRNG and the platform's key generation.</summary>
public sealed class PlatformSecrets : ISecretSource
{
    public static PlatformSecrets Instance { get; } = new();

    public void Fill(Span<byte> destination) => RandomNumberGenerator.Fill(destination);

    public AgreementKeyPair NewKeyPair() => AgreementKeyPair.Generate();
}

/// <summary>
/// A reproducible source for simulations and tests: the AES-CTR key stream of a seed (<see cref="MaskGenerator"/>),
/// and key pairs whose private scalar comes from that stream. Not for deployments: anyone who knows the seed
/// knows every secret.
/// </summary>
public sealed class SeededSecrets : ISecretSource
{
    private readonly byte[] _seed = new byte[MaskGenerator.SeedBytes];
    private readonly Lock _gate = new();
    private ulong _block;

    public SeededSecrets(ulong seed)
    {
        BitConverter.TryWriteBytes(_seed, seed);
        _seed[31] = 0x5E;
    }

    public void Fill(Span<byte> destination)
    {
        if (destination.IsEmpty)
            return;
        int blocks = (destination.Length + 15) / 16;
        var buffer = new byte[blocks * 16];
        lock (_gate)
        {
            MaskGenerator.Fill(_seed, _block, buffer);
            _block += (ulong)blocks;
        }
        buffer.AsSpan(0, destination.Length).CopyTo(destination);
    }

    public AgreementKeyPair NewKeyPair()
    {
        var d = new byte[32];
        while (true)
        {
            Fill(d);
            if (AgreementKeyPair.TryFromPrivateScalar(d, out var pair))
                return pair;
        }
    }
}
