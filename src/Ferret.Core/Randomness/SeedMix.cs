namespace Ferret.Core.Randomness;

/// <summary>
/// Deterministic seeds derived from several numbers or names (SplitMix64 finaliser, FNV-1a for text), so
/// sampling and data order reproduce across processes and machines; <see cref="HashCode"/> is randomised
/// per process and must not be used for this.
/// </summary>
public static class SeedMix
{
    public static ulong Combine(params ReadOnlySpan<ulong> values)
    {
        ulong h = 0x9E3779B97F4A7C15UL;
        foreach (var v in values)
        {
            h ^= v + 0x9E3779B97F4A7C15UL + (h << 6) + (h >> 2);
            h = (h ^ (h >> 30)) * 0xBF58476D1CE4E5B9UL;
            h = (h ^ (h >> 27)) * 0x94D049BB133111EBUL;
            h ^= h >> 31;
        }
        return h;
    }

    /// <summary>FNV-1a over the UTF-16 code units of a name.</summary>
    public static ulong Of(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        ulong h = 0xCBF29CE484222325UL;
        foreach (char c in text)
        {
            h ^= c;
            h *= 0x100000001B3UL;
        }
        return h;
    }

    /// <summary>A <see cref="Random"/> seeded from the combined values.</summary>
    public static Random Random(params ReadOnlySpan<ulong> values) => new(unchecked((int)Combine(values)));
}
