using System.CommandLine;
using System.Globalization;
using Ferret.Core.Randomness;

namespace Ferret.Cli.Commands;

/// <summary>
/// <c>ferret basis</c>: prints basis elements of shared randomness v1, so a client written in another language
/// can be checked against this implementation bit for bit.
/// </summary>
internal static class BasisCommand
{
    public static Command Create()
    {
        var seed = new Option<string>("--seed") { Description = "Seed s (unsigned 64-bit; decimal or 0x-prefixed hex).", Required = true };
        var block = new Option<uint>("--block") { Description = "Block index b.", DefaultValueFactory = _ => 0 };
        var length = new Option<long>("--length") { Description = "Block length n.", Required = true };
        var index = new Option<string>("--index") { Description = "Element indices i, comma-separated (a-b for a range).", Required = true };
        var dist = Choices.Create("--dist", "Basis distribution.", "uniform", "uniform", "rademacher");
        var command = new Command("basis", "Print basis elements: one line 'index hexbits value' per index (hexbits = float32 bit pattern).")
        {
            seed, block, length, index, dist,
        };
        CommandAction.Set(command, parse =>
        {
            ulong s = ParseSeed(parse.GetValue(seed)!);
            long n = parse.GetValue(length);
            if (n <= 0)
                throw new ArgumentException($"--length must be positive (got {n}).");
            var distribution = parse.GetValue(dist) == "rademacher" ? BasisDistribution.Rademacher : BasisDistribution.Uniform;
            uint b = parse.GetValue(block);
            var output = parse.InvocationConfiguration.Output;
            foreach (var i in ParseIndices(parse.GetValue(index)!, n))
            {
                float v = SharedRandomness.BasisElement(s, b, n, i, distribution);
                output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{i} {BitConverter.SingleToUInt32Bits(v):x8} {v:G9}"));
            }
            return 0;
        });
        return command;
    }

    internal static ulong ParseSeed(string text)
    {
        text = text.Trim();
        bool hex = text.StartsWith("0x", StringComparison.OrdinalIgnoreCase);
        bool ok = hex
            ? ulong.TryParse(text.AsSpan(2), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var value)
            : ulong.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out value);
        return ok ? value : throw new ArgumentException($"--seed '{text}' is not an unsigned 64-bit integer.");
    }

    internal static IEnumerable<ulong> ParseIndices(string text, long length)
    {
        var result = new List<ulong>();
        foreach (var part in text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var range = part.Split('-');
            if (range.Length is 1 or 2
                && ulong.TryParse(range[0], NumberStyles.None, CultureInfo.InvariantCulture, out var from)
                && (range.Length == 1 || ulong.TryParse(range[1], NumberStyles.None, CultureInfo.InvariantCulture, out _)))
            {
                ulong to = range.Length == 2 ? ulong.Parse(range[1], CultureInfo.InvariantCulture) : from;
                if (to < from || to - from > 1_000_000)
                    throw new ArgumentException($"--index range '{part}' must ascend and span at most 1,000,000 elements.");
                if (to >= (ulong)length)
                    throw new ArgumentException($"--index {to} is outside the block of length {length}.");
                for (ulong i = from; i <= to; i++)
                    result.Add(i);
            }
            else
            {
                throw new ArgumentException($"--index '{part}' is not an index or a range a-b.");
            }
        }
        if (result.Count == 0)
            throw new ArgumentException("--index names no element.");
        return result;
    }
}
