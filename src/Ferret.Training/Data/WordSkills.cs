using System.Globalization;
using System.Text;

namespace Ferret.Training.Data;

/// <summary>The language an instruction is written in.</summary>
public enum InstructionLanguage
{
    /// <summary>The language the demo's base model was pretrained to follow.</summary>
    English,

    /// <summary>A language the base never saw an instruction in; federated tuning teaches it.</summary>
    German,
}

/// <summary>
/// The demo's curriculum: small skills on random lower-case words (copy, first letter, last letter, length).
/// The pretraining corpus (<see cref="Corpus"/>) holds repeated words, textbook sentences ("the last letter of
/// abc is c.") and instructions in English in the Alpaca template: the stand-in for what a real base model
/// learned before anyone tuned it. Federated instruction tuning then teaches instructions in German, which the
/// base never saw. Words are split for good: a fixed share of all words (<see cref="IsHeldOut"/>) never appears
/// in the corpus or in any client's data and is kept for evaluation.
/// </summary>
public static class WordSkills
{
    public const string Copy = "copy";
    public const string FirstLetter = "first-letter";
    public const string LastLetter = "last-letter";
    public const string Length = "length";

    /// <summary>Every skill, each its own category.</summary>
    public static IReadOnlyList<string> Names { get; } = [Copy, FirstLetter, LastLetter, Length];

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

    public static string Instruction(string skill, InstructionLanguage language) => (skill, language) switch
    {
        (Copy, InstructionLanguage.English) => "Repeat the word exactly.",
        (FirstLetter, InstructionLanguage.English) => "What is the first letter of the word?",
        (LastLetter, InstructionLanguage.English) => "What is the last letter of the word?",
        (Length, InstructionLanguage.English) => "How many letters does the word have?",
        (Copy, InstructionLanguage.German) => "Wiederhole das Wort genau.",
        (FirstLetter, InstructionLanguage.German) => "Wie lautet der erste Buchstabe des Wortes?",
        (LastLetter, InstructionLanguage.German) => "Wie lautet der letzte Buchstabe des Wortes?",
        (Length, InstructionLanguage.German) => "Wie viele Buchstaben hat das Wort?",
        _ => throw Unknown(skill),
    };

    /// <summary>The skill's answer for a word.</summary>
    public static string Answer(string skill, string word)
    {
        ArgumentNullException.ThrowIfNull(word);
        return skill switch
        {
            Copy => word,
            FirstLetter => word[..1],
            LastLetter => word[^1..],
            Length => word.Length.ToString(CultureInfo.InvariantCulture),
            _ => throw Unknown(skill),
        };
    }

    /// <summary>The skill as a sentence of the pretraining corpus.</summary>
    public static string Sentence(string skill, string word) => skill switch
    {
        Copy => $"{word} is spelled {word}.",
        FirstLetter => $"the first letter of {word} is {Answer(skill, word)}.",
        LastLetter => $"the last letter of {word} is {Answer(skill, word)}.",
        Length => $"{word} has {Answer(skill, word)} letters.",
        _ => throw Unknown(skill),
    };

    /// <summary>
    /// A word: 3 to 6 random letters, never one with the same first and last letter (so the first- and
    /// last-letter answers always differ), on the held-out side of <see cref="IsHeldOut"/> or the other.
    /// </summary>
    public static string Word(Random random, bool heldOut)
    {
        ArgumentNullException.ThrowIfNull(random);
        while (true)
        {
            string word = new(Enumerable.Range(0, random.Next(3, 7)).Select(_ => (char)('a' + random.Next(26))).ToArray());
            if (word[0] != word[^1] && IsHeldOut(word) == heldOut)
                return word;
        }
    }

    public static InstructionExample Example(string skill, string word, InstructionLanguage language) =>
        new(Instruction(skill, language), word, Answer(skill, word), skill);

    /// <summary><paramref name="count"/> instructions over <paramref name="skills"/> in turn, on training words only.</summary>
    public static List<InstructionExample> Training(IReadOnlyList<string> skills, int count, int seed, InstructionLanguage language) =>
        Draw(skills, count, seed, language, heldOut: false);

    /// <summary><paramref name="count"/> instructions over <paramref name="skills"/> in turn, on held-out words, no prompt twice.</summary>
    public static List<InstructionExample> HeldOut(IReadOnlyList<string> skills, int count, int seed, InstructionLanguage language) =>
        Draw(skills, count, seed, language, heldOut: true);

    private static List<InstructionExample> Draw(IReadOnlyList<string> skills, int count, int seed, InstructionLanguage language, bool heldOut)
    {
        ArgumentNullException.ThrowIfNull(skills);
        if (skills.Count == 0)
            throw new ArgumentException("Name at least one skill.", nameof(skills));
        foreach (var s in skills)
            _ = Answer(s, "abc");
        var random = new Random(seed);
        var seen = new HashSet<(string, string)>();
        var examples = new List<InstructionExample>(count);
        while (examples.Count < count)
        {
            string skill = skills[examples.Count % skills.Count];
            var e = Example(skill, Word(random, heldOut), language);
            if (!heldOut || seen.Add((skill, e.Input)))
                examples.Add(e);
        }
        return examples;
    }

    /// <summary>
    /// The pretraining corpus, training words only, in turn: a run of repeated words ("abc abc abc."), a textbook
    /// paragraph of 4 to 8 sentences over every skill, and an English instruction written out in the Alpaca template
    /// with its answer. Categories: repetition, textbook, and the skill of each instruction.
    /// </summary>
    public static List<InstructionExample> Corpus(int documents, int seed)
    {
        var random = new Random(seed);
        var corpus = new List<InstructionExample>(documents);
        for (int d = 0; d < documents; d++)
        {
            switch (d % 3)
            {
                case 0:
                    {
                        var text = new StringBuilder();
                        int words = random.Next(3, 7);
                        for (int w = 0; w < words; w++)
                        {
                            string word = Word(random, heldOut: false);
                            if (w > 0)
                                text.Append(' ');
                            text.AppendJoin(' ', Enumerable.Repeat(word, random.Next(2, 4))).Append('.');
                        }
                        corpus.Add(InstructionExample.PlainText(text.ToString(), "repetition"));
                        break;
                    }
                case 1:
                    {
                        var text = new StringBuilder();
                        int sentences = random.Next(4, 9);
                        for (int s = 0; s < sentences; s++)
                        {
                            if (s > 0)
                                text.Append(' ');
                            text.Append(Sentence(Names[random.Next(Names.Count)], Word(random, heldOut: false)));
                        }
                        corpus.Add(InstructionExample.PlainText(text.ToString(), "textbook"));
                        break;
                    }
                default:
                    {
                        var e = Example(Names[random.Next(Names.Count)], Word(random, heldOut: false), InstructionLanguage.English);
                        corpus.Add(InstructionExample.PlainText(PromptTemplate.Format(e) + e.Output, e.Category));
                        break;
                    }
            }
        }
        return corpus;
    }

    private static ArgumentException Unknown(string skill) =>
        new($"Unknown skill '{skill}': expected one of {string.Join(", ", Names)}.");
}
