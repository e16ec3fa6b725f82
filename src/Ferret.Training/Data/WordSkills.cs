using System.Globalization;
using System.Text;

namespace Ferret.Training.Data;

/// <summary>
/// The demo's curriculum: small skills on random lower-case words (reverse, first and last letter, doubled
/// letters, length, copy), each written two ways. A <em>textbook</em> sentence ("abc backwards is
/// cba.") is what a pretraining corpus holds, the stand-in for what a real base model learned from the web; an
/// <em>instruction</em> in the Alpaca template ("Reverse the word." with input "abc") is what instruction tuning
/// teaches. The base model is pretrained on the textbook sentences of every skill plus instruction
/// demonstrations of a few <see cref="BaseTasks"/>; federated tuning then teaches the <see cref="TuningTasks"/>,
/// instructions the base was never shown. Words are split for good: a fixed share of all words
/// (<see cref="IsHeldOut"/>) never appears in the corpus or in any client's data and is kept for evaluation.
/// </summary>
public static class WordSkills
{
    public const string Reverse = "reverse";
    public const string FirstLetter = "first-letter";
    public const string LastLetter = "last-letter";
    public const string DoubleLetters = "double";
    public const string Length = "length";
    public const string Copy = "copy";

    /// <summary>Every skill, each its own category.</summary>
    public static IReadOnlyList<string> Names { get; } = [Reverse, FirstLetter, LastLetter, DoubleLetters, Length, Copy];

    /// <summary>Skills the base model sees as instructions during pretraining.</summary>
    public static IReadOnlyList<string> BaseTasks { get; } = [Copy, FirstLetter, Length];

    /// <summary>Skills the base knows only from textbook sentences; federated tuning teaches them as instructions.</summary>
    public static IReadOnlyList<string> TuningTasks { get; } = [Reverse, LastLetter, DoubleLetters];

    /// <summary>One word in this many (by a fixed hash) is reserved for evaluation.</summary>
    public const int HeldOutShare = 8;

    /// <summary>
    /// Whether a word is reserved for evaluation: FNV-1a of its letters, modulo <see cref="HeldOutShare"/>. Fixed,
    /// so a corpus, client shards and held-out prompts drawn with any seeds never share a word.
    /// </summary>
    public static bool IsHeldOut(string word)
    {
        ArgumentNullException.ThrowIfNull(word);
        uint h = 2166136261;
        foreach (char c in word)
            h = (h ^ c) * 16777619;
        return h % HeldOutShare == 0;
    }

    public static string Instruction(string skill) => skill switch
    {
        Reverse => "Reverse the word.",
        FirstLetter => "What is the first letter of the word?",
        LastLetter => "What is the last letter of the word?",
        DoubleLetters => "DoubleLetters every letter of the word.",
        Length => "How many letters does the word have?",
        Copy => "Repeat the word exactly.",
        _ => throw Unknown(skill),
    };

    /// <summary>The skill's answer for a word.</summary>
    public static string Answer(string skill, string word)
    {
        ArgumentNullException.ThrowIfNull(word);
        return skill switch
        {
            Reverse => new string(word.Reverse().ToArray()),
            FirstLetter => word[..1],
            LastLetter => word[^1..],
            DoubleLetters => string.Concat(word.Select(c => new string(c, 2))),
            Length => word.Length.ToString(CultureInfo.InvariantCulture),
            Copy => word,
            _ => throw Unknown(skill),
        };
    }

    /// <summary>The skill as a sentence of the pretraining corpus.</summary>
    public static string Sentence(string skill, string word) => skill switch
    {
        Reverse => $"{word} backwards is {Answer(skill, word)}.",
        FirstLetter => $"the first letter of {word} is {Answer(skill, word)}.",
        LastLetter => $"the last letter of {word} is {Answer(skill, word)}.",
        DoubleLetters => $"{word} with every letter doubled is {Answer(skill, word)}.",
        Length => $"{word} has {Answer(skill, word)} letters.",
        Copy => $"{word} is spelled {word}.",
        _ => throw Unknown(skill),
    };

    /// <summary>
    /// A word for a skill: 3 to 6 random letters, never one with the same first and last letter (so first
    /// and last letter differ, and no word reverses to itself).
    /// </summary>
    public static string Word(string skill, Random random, bool heldOut)
    {
        ArgumentNullException.ThrowIfNull(random);
        _ = Instruction(skill);
        while (true)
        {
            string word = new(Enumerable.Range(0, random.Next(3, 7)).Select(_ => (char)('a' + random.Next(26))).ToArray());
            if (word[0] == word[^1] || IsHeldOut(word) != heldOut)
                continue;
            return word;
        }
    }

    public static InstructionExample Example(string skill, string word) => new(Instruction(skill), word, Answer(skill, word), skill);

    /// <summary><paramref name="count"/> instruction examples over <paramref name="skills"/> in turn, on training words only.</summary>
    public static List<InstructionExample> Training(IReadOnlyList<string> skills, int count, int seed) => Draw(skills, count, seed, heldOut: false);

    /// <summary><paramref name="count"/> instruction examples on held-out words, none repeated.</summary>
    public static List<InstructionExample> HeldOut(IReadOnlyList<string> skills, int count, int seed) => Draw(skills, count, seed, heldOut: true);

    private static List<InstructionExample> Draw(IReadOnlyList<string> skills, int count, int seed, bool heldOut)
    {
        ArgumentNullException.ThrowIfNull(skills);
        if (skills.Count == 0)
            throw new ArgumentException("Name at least one skill.", nameof(skills));
        var random = new Random(seed);
        var seen = new HashSet<(string, string)>();
        var examples = new List<InstructionExample>(count);
        while (examples.Count < count)
        {
            string skill = skills[examples.Count % skills.Count];
            var e = Example(skill, Word(skill, random, heldOut));
            if (!heldOut || seen.Add((skill, e.Input)))
                examples.Add(e);
        }
        return examples;
    }

    /// <summary>
    /// The pretraining corpus: plain-text documents, half textbook paragraphs (4 to 8 sentences over every skill),
    /// half instruction demonstrations of <see cref="BaseTasks"/> written out in the Alpaca template. Training words only.
    /// </summary>
    public static List<InstructionExample> Corpus(int documents, int seed)
    {
        var random = new Random(seed);
        var corpus = new List<InstructionExample>(documents);
        for (int d = 0; d < documents; d++)
        {
            if (d % 2 == 0)
            {
                var text = new StringBuilder();
                int sentences = random.Next(4, 9);
                for (int s = 0; s < sentences; s++)
                {
                    string skill = Names[random.Next(Names.Count)];
                    if (s > 0)
                        text.Append(' ');
                    text.Append(Sentence(skill, Word(skill, random, heldOut: false)));
                }
                corpus.Add(InstructionExample.PlainText(text.ToString(), "textbook"));
            }
            else
            {
                string skill = BaseTasks[random.Next(BaseTasks.Count)];
                var e = Example(skill, Word(skill, random, heldOut: false));
                corpus.Add(InstructionExample.PlainText(PromptTemplate.Format(e) + e.Output, skill));
            }
        }
        return corpus;
    }

    private static ArgumentException Unknown(string skill) =>
        new($"Unknown skill '{skill}': expected one of {string.Join(", ", Names)}.");
}
