using Ferret.Core.Packets;

namespace Ferret.Cli.Reliability;

/// <summary>
/// Turns a valid packet into a hostile one, reproducibly from a seed: byte-level damage (bit flips, truncation,
/// trailing bytes, headers that lie about lengths, wrong type markers, garbage) and structured lies (NaN,
/// infinities and huge values, duplicated seeds, out-of-range blocks and seeds, nil fields, wrong experiment
/// or round, absurd sample counts, run-length bombs). Some mutations leave a packet valid (a flipped mantissa
/// bit); the oracle decides.
/// </summary>
internal sealed class PacketMutator(Random random)
{
    public static IReadOnlyList<string> Kinds { get; } =
    [
        "bit-flip", "truncate", "trailing-bytes", "length-lie", "wrong-type", "garbage", "non-finite", "huge-value", "duplicate-seed",
        "out-of-range", "nil-field", "wrong-experiment", "wrong-round", "sample-count", "run-length-bomb", "split-runs", "untouched",
    ];

    public (byte[] Packet, string Kind) Mutate(ClientUpdate valid)
    {
        ArgumentNullException.ThrowIfNull(valid);
        string kind = Kinds[random.Next(Kinds.Count)];
        var bytes = Wire.Serialize(valid);
        return (kind switch
        {
            "bit-flip" => BitFlips(bytes),
            "truncate" => bytes[..random.Next(bytes.Length)],
            "trailing-bytes" => [.. bytes, .. RandomBytes(random.Next(1, 64))],
            "length-lie" => LengthLie(bytes),
            "wrong-type" => WrongType(bytes),
            "garbage" => RandomBytes(random.Next(1, 512)),
            "untouched" => bytes,
            "run-length-bomb" => RunLengthBomb(bytes),
            _ => Structured(valid, kind),
        }, kind);
    }

    private byte[] RandomBytes(int n)
    {
        var b = new byte[n];
        random.NextBytes(b);
        return b;
    }

    private byte[] BitFlips(byte[] bytes)
    {
        var copy = (byte[])bytes.Clone();
        int flips = random.Next(1, 9);
        for (int i = 0; i < flips; i++)
            copy[random.Next(copy.Length)] ^= (byte)(1 << random.Next(8));
        return copy;
    }

    /// <summary>Rewrites the length of a bin, string or array header to a different value.</summary>
    private byte[] LengthLie(byte[] bytes)
    {
        var copy = (byte[])bytes.Clone();
        var headers = Enumerable.Range(0, copy.Length - 2).Where(i => copy[i] is 0xc4 or 0xc5 or 0xc6 or 0xdc or (>= 0x90 and <= 0x9f) or (>= 0xa0 and <= 0xbf) or 0xd9).ToList();
        if (headers.Count == 0)
            return BitFlips(bytes);
        int at = headers[random.Next(headers.Count)];
        if (copy[at] is (>= 0x90 and <= 0x9f) or (>= 0xa0 and <= 0xbf))
            copy[at] = (byte)((copy[at] & 0xf0) | random.Next(16));
        else
            copy[at + 1] = (byte)random.Next(256);
        if (copy[at] is 0xc6 or 0xc5 && at + 2 < copy.Length)
            copy[at + 2] = (byte)random.Next(256);
        return copy;
    }

    private byte[] WrongType(byte[] bytes)
    {
        var copy = (byte[])bytes.Clone();
        byte[] markers = [0xc0, 0xc2, 0xc3, 0xca, 0xcb, 0xa1, 0x91, 0x80, 0xc4, 0xd4, 0xc1];
        copy[random.Next(Math.Min(copy.Length, 48))] = markers[random.Next(markers.Length)];
        return copy;
    }

    /// <summary>An empty or real block-run array replaced by one run claiming millions of entries.</summary>
    private byte[] RunLengthBomb(byte[] bytes)
    {
        int at = Array.IndexOf(bytes, (byte)0x92);
        if (at < 0)
            return [.. bytes.Take(16), 0x92, 0x00, 0xce, 0x04, 0x00, 0x00, 0x00];
        int count = random.Next(1 << 20, 1 << 27);
        byte[] run = [0x92, 0x00, 0xce, (byte)(count >> 24), (byte)(count >> 16), (byte)(count >> 8), (byte)count];
        return [.. bytes[..at], .. run, .. bytes[Math.Min(bytes.Length, at + 3)..]];
    }

    private byte[] Structured(ClientUpdate valid, string kind)
    {
        var u = Wire.Deserialize<ClientUpdate>(Wire.Serialize(valid));
        float[] values = u switch { FerretUpdate f => f.Gammas, SeedScalarsUpdate s => s.Scalars, FullDeltaUpdate d => d.Delta, _ => [] };
        int[] seeds = u switch { FerretUpdate f => f.SeedIndices, SeedScalarsUpdate s => s.SeedIndices, _ => [] };
        switch (kind)
        {
            case "non-finite":
                float bad = new[] { float.NaN, float.PositiveInfinity, float.NegativeInfinity }[random.Next(3)];
                if (random.Next(2) == 0 && values.Length > 0)
                    values[random.Next(values.Length)] = bad;
                else if (random.Next(2) == 0)
                    u.Stats.Loss = bad;
                else
                    u.Stats.ComputeSeconds = bad;
                break;
            case "huge-value":
                if (values.Length > 0 && random.Next(2) == 0)
                    values[random.Next(values.Length)] = 1e30f * (random.Next(2) == 0 ? 1 : -1);
                else
                    u.Stats.Loss = 1e300;
                break;
            case "duplicate-seed" when seeds.Length > 1:
                seeds[random.Next(1, seeds.Length)] = seeds[0];
                break;
            case "out-of-range":
                if (u is FerretUpdate fr && random.Next(2) == 0)
                    fr.Blocks[random.Next(fr.Blocks.Length)] = random.Next(2) == 0 ? -1 : 100_000;
                else if (seeds.Length > 0)
                    seeds[random.Next(seeds.Length)] = 65_535;
                else
                    u.Stats.ForwardPasses = -1;
                break;
            case "nil-field":
                switch (u)
                {
                    case FerretUpdate f:
                        if (random.Next(3) == 0) f.Gammas = null!; else if (random.Next(2) == 0) f.Blocks = null!; else f.SeedIndices = null!;
                        break;
                    case SeedScalarsUpdate s:
                        s.Scalars = null!;
                        break;
                    case FullDeltaUpdate d:
                        d.Delta = null!;
                        break;
                }
                if (random.Next(4) == 0)
                    u.Stats = null!;
                break;
            case "wrong-experiment":
                u.ExperimentId = random.Next(2) == 0 ? "exp-000000000000" : new string('x', random.Next(100, 5000));
                break;
            case "wrong-round":
                u.Round = random.Next(2) == 0 ? u.Round + 1 : -1;
                break;
            case "sample-count":
                u.SampleCount = new[] { 0L, -5L, long.MaxValue, 10_000_000_000L }[random.Next(4)];
                break;
            case "split-runs" when u is FerretUpdate:
                return SplitRuns(Wire.Serialize(u));
            default:
                return BitFlips(Wire.Serialize(u));
        }
        return Wire.Serialize(u);
    }

    /// <summary>The same blocks written as two runs where the encoder writes one: equivalent, but not canonical.</summary>
    private static byte[] SplitRuns(byte[] bytes)
    {
        // The first run is "0x00 count" right after a fixarray header of pairs; split count c into 1 and c - 1.
        int at = Enumerable.Range(0, bytes.Length - 3).FirstOrDefault(i => bytes[i] is >= 0x92 and <= 0x9e && (bytes[i] & 1) == 0 && bytes[i + 1] == 0x00 && bytes[i + 2] is >= 2 and <= 0x7f, -1);
        if (at < 0)
            return [.. bytes, 0xc0];
        int pairs = (bytes[at] & 0x0f) / 2;
        if (pairs >= 7)
            return [.. bytes, 0xc0];
        return [.. bytes[..at], (byte)(0x90 | (2 * (pairs + 1))), 0x00, 0x01, 0x00, (byte)(bytes[at + 2] - 1), .. bytes[(at + 3)..]];
    }
}
