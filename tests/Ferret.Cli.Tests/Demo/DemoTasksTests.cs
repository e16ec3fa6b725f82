using Ferret.Cli.Demo;
using Ferret.Training.Data;

namespace Ferret.Cli.Tests.Demo;

public sealed class DemoTasksTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("ferret-demo-tasks-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void No_held_out_prompt_or_held_out_word_is_in_any_clients_shard()
    {
        var data = DemoTasks.Write(_dir, clients: 4);
        Assert.Equal(4, data.Shards.Count);
        // What the clients read, read back the way an edge client reads it.
        var shards = data.Shards.Select(s => InstructionData.Read(s, DataFormat.Auto, MalformedRecords.Fail).Examples).ToList();
        Assert.Equal(DemoTasks.TrainingExamples, shards.Sum(s => s.Count));
        var clientPrompts = shards.SelectMany(s => s).Select(e => (e.Instruction, e.Input)).ToHashSet();
        var clientWords = shards.SelectMany(s => s).Select(e => e.Input).ToHashSet(StringComparer.Ordinal);
        Assert.Equal(DemoTasks.HeldOutPrompts, data.HeldOut.Count);
        Assert.All(data.HeldOut, e =>
        {
            Assert.False(clientPrompts.Contains((e.Instruction, e.Input)), $"held-out prompt '{e.Instruction} {e.Input}' is in a client's shard");
            Assert.False(clientWords.Contains(e.Input), $"held-out word '{e.Input}' appears in a client's shard");
        });
        // Every demo skill is both taught and tested, in German.
        Assert.Equal(DemoTasks.Skills.Order(), data.HeldOut.Select(e => e.Category).Distinct().Order());
        Assert.Equal(DemoTasks.Skills.Order(), shards.SelectMany(s => s).Select(e => e.Category).Distinct().Order());
        Assert.All(shards.SelectMany(s => s), e => Assert.Equal(WordSkills.Instruction(e.Category, InstructionLanguage.German), e.Instruction));
    }

    [Fact]
    public void The_pretraining_corpus_never_holds_a_held_out_word_or_a_german_instruction()
    {
        var data = DemoTasks.Write(_dir, clients: 2);
        var corpus = WordSkills.Corpus(3000, 1);
        var text = string.Join('\n', corpus.Select(e => e.Output));
        Assert.All(data.HeldOut, e => Assert.DoesNotContain($" {e.Input}.", text));
        Assert.All(data.HeldOut, e => Assert.DoesNotContain($"\n{e.Input}\n", text));
        Assert.DoesNotContain("Buchstabe", text);
    }
}
