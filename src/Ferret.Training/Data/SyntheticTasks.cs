namespace Ferret.Training.Data;

/// <summary>
/// Algorithmic instruction tasks with exact answers, for offline runs where no data set can be downloaded:
/// short enough for a byte-level tiny model, varied enough that learning shows in the loss and Rouge-L.
/// </summary>
public static class SyntheticTasks
{
    private const string Letters = "abcdefghijklmnopqrstuvwxyz";

    private static readonly string[] Words =
    [
        "ferret", "seed", "basis", "round", "client", "server", "model", "token", "layer", "graph", "update", "random",
        "vector", "block", "shared", "federal", "tensor", "kernel", "loss", "step", "device", "edge", "packet", "delta",
    ];

    /// <summary>The task names, each its own category.</summary>
    public static IReadOnlyList<string> Names { get; } = ["reverse", "sort", "add", "count", "upper", "lower", "copy", "next-letter"];

    public static InstructionExample Generate(string task, Random random)
    {
        ArgumentNullException.ThrowIfNull(random);
        string word = Words[random.Next(Words.Length)];
        string RandomWord(int min, int max) => new(Enumerable.Range(0, random.Next(min, max + 1)).Select(_ => Letters[random.Next(Letters.Length)]).ToArray());
        return task switch
        {
            "reverse" => new("Reverse the word.", word, new string(word.Reverse().ToArray()), task),
            "sort" => Sort(RandomWord(4, 7)),
            "add" => Add(random),
            "count" => Count(random, word),
            "upper" => new("Write the word in upper case.", word, word.ToUpperInvariant(), task),
            "lower" => new("Write the word in lower case.", word.ToUpperInvariant(), word, task),
            "copy" => Copy(RandomWord(3, 8)),
            "next-letter" => NextLetter(random),
            _ => throw new ArgumentException($"Unknown synthetic task '{task}': expected one of {string.Join(", ", Names)}."),
        };
    }

    private static InstructionExample Copy(string text) => new("Repeat the input exactly.", text, text, "copy");

    private static InstructionExample Sort(string letters) =>
        new("Sort the letters alphabetically.", letters, new string(letters.Order().ToArray()), "sort");

    private static InstructionExample Add(Random random)
    {
        int a = random.Next(0, 50), b = random.Next(0, 50);
        return new("Add the two numbers.", $"{a} + {b}", (a + b).ToString(System.Globalization.CultureInfo.InvariantCulture), "add");
    }

    private static InstructionExample Count(Random random, string word)
    {
        char letter = word[random.Next(word.Length)];
        return new($"How many times does the letter '{letter}' appear?", word,
            word.Count(c => c == letter).ToString(System.Globalization.CultureInfo.InvariantCulture), "count");
    }

    private static InstructionExample NextLetter(Random random)
    {
        int i = random.Next(Letters.Length - 1);
        return new("Which letter comes next in the alphabet?", Letters[i].ToString(), Letters[i + 1].ToString(), "next-letter");
    }

    /// <summary>Draws <paramref name="count"/> examples, tasks in turn, reproducibly for a seed.</summary>
    public static List<InstructionExample> Sample(IReadOnlyList<string> tasks, int count, int seed)
    {
        ArgumentNullException.ThrowIfNull(tasks);
        if (tasks.Count == 0)
            throw new ArgumentException("Name at least one task.", nameof(tasks));
        var random = new Random(seed);
        return Enumerable.Range(0, count).Select(i => Generate(tasks[i % tasks.Count], random)).ToList();
    }

    /// <summary>Writes examples as Alpaca JSONL (with a category field), atomically.</summary>
    public static void WriteJsonLines(string path, IEnumerable<InstructionExample> examples) => InstructionData.WriteJsonLines(path, examples);
}
