using Ferret.Training.Data;
using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;

namespace Ferret.Training.Tests.Data;

public class WordSkillsTests
{
    [Property(MaxTest = 30)]
    public Property Held_out_words_never_reach_the_corpus_or_training_data_and_held_out_prompts_use_only_them(int seed)
    {
        var corpus = WordSkills.Corpus(60, seed);
        var training = WordSkills.Training(WordSkills.Names, 80, seed, InstructionLanguage.German);
        var heldOut = WordSkills.HeldOut(WordSkills.Names, 40, seed, InstructionLanguage.German);
        var corpusWords = corpus.SelectMany(e => Words(e.Output)).ToList();
        bool clean = corpusWords.All(w => !WordSkills.IsHeldOut(w)) && training.All(e => !WordSkills.IsHeldOut(e.Input));
        bool reserved = heldOut.All(e => WordSkills.IsHeldOut(e.Input));
        bool distinct = heldOut.Select(e => (e.Category, e.Input)).Distinct().Count() == heldOut.Count;
        return (clean && reserved && distinct).Label($"clean {clean}, reserved {reserved}, distinct {distinct}");
    }

    // Lower-case runs of 3 to 6 letters: the random words (the template's own words are capitalised or longer or listed).
    private static IEnumerable<string> Words(string text) =>
        text.Split([' ', '.', '\n', ':', '?', ','], StringSplitOptions.RemoveEmptyEntries)
            .Where(w => w.Length is >= 3 and <= 6 && w.All(char.IsAsciiLetterLower) && !TemplateWords.Contains(w));

    private static readonly HashSet<string> TemplateWords = new(
        PromptTemplate.Format("x", "y").Split([' ', '.', '\n', ':', '?', ','], StringSplitOptions.RemoveEmptyEntries)
            .Concat(WordSkills.Names.SelectMany(s => WordSkills.Instruction(s, InstructionLanguage.English).Split([' ', '.', '?'], StringSplitOptions.RemoveEmptyEntries)))
            .Concat(["the", "first", "last", "letter", "has", "letters", "spelled"]),
        StringComparer.Ordinal);

    [Theory]
    [InlineData(WordSkills.Copy, "ferret", "ferret")]
    [InlineData(WordSkills.FirstLetter, "ferret", "f")]
    [InlineData(WordSkills.LastLetter, "ferret", "t")]
    [InlineData(WordSkills.Length, "ferret", "6")]
    public void Answers_are_the_skill_applied_to_the_word(string skill, string word, string answer)
    {
        Assert.Equal(answer, WordSkills.Answer(skill, word));
        Assert.Contains(word, WordSkills.Sentence(skill, word));
        Assert.EndsWith($"{answer}.", WordSkills.Sentence(skill, word).Replace(" letters.", ".", StringComparison.Ordinal));
    }

    [Fact]
    public void The_corpus_holds_repetitions_textbook_paragraphs_and_english_instructions_only()
    {
        var corpus = WordSkills.Corpus(300, 7);
        Assert.All(corpus, e => Assert.True(e.IsPlainText, "pretraining documents are plain text"));
        Assert.Equal(100, corpus.Count(e => e.Category == "repetition"));
        Assert.Equal(100, corpus.Count(e => e.Category == "textbook"));
        var instructions = corpus.Where(e => WordSkills.Names.Contains(e.Category)).ToList();
        Assert.Equal(100, instructions.Count);
        Assert.All(instructions, e => Assert.Contains(WordSkills.Instruction(e.Category, InstructionLanguage.English), e.Output));
        Assert.DoesNotContain(corpus, e => WordSkills.Names.Any(s => e.Output.Contains(WordSkills.Instruction(s, InstructionLanguage.German), StringComparison.Ordinal)));
        Assert.Equal(corpus.Select(e => e.Output), WordSkills.Corpus(300, 7).Select(e => e.Output));
    }

    [Fact]
    public void Training_examples_take_the_skills_in_turn_in_the_language_asked()
    {
        var german = WordSkills.Training(WordSkills.Names, 8, 1, InstructionLanguage.German);
        Assert.Equal(WordSkills.Names.Concat(WordSkills.Names), german.Select(e => e.Category));
        Assert.All(german, e => Assert.Equal(WordSkills.Instruction(e.Category, InstructionLanguage.German), e.Instruction));
        Assert.All(german, e => Assert.NotEqual(e.Input[0], e.Input[^1]));
        Assert.Throws<ArgumentException>(() => WordSkills.Training(["juggle"], 1, 1, InstructionLanguage.German));
    }
}
