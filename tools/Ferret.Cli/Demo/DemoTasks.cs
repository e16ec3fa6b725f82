using Ferret.Training.Data;

namespace Ferret.Cli.Demo;

/// <summary>The demo's instruction data: one shard per edge client, and held-out prompts on words no shard uses.</summary>
internal sealed record DemoData(IReadOnlyList<string> Shards, IReadOnlyList<InstructionExample> HeldOut);

/// <summary>
/// Writes the demo's federated instruction-tuning data: word skills asked in German (a language the pretrained
/// base never saw an instruction in) on training words, dealt IID over the clients, and held-out prompts on words
/// reserved for evaluation (<see cref="WordSkills.IsHeldOut"/>), so no held-out prompt is in any client's data.
/// </summary>
internal static class DemoTasks
{
    /// <summary>
    /// The skills the demo tunes: those the committed base answers in English (models/README.md measures each);
    /// a skill the base never learned cannot be carried over to a new language in a few rounds.
    /// </summary>
    public static IReadOnlyList<string> Skills { get; } = [WordSkills.Length];

    public const int TrainingExamples = 2000;

    public const int HeldOutPrompts = 32;

    public static DemoData Write(string folder, int clients, int seed = 1)
    {
        var train = WordSkills.Training(Skills, TrainingExamples, seed, InstructionLanguage.German);
        var heldOut = WordSkills.HeldOut(Skills, HeldOutPrompts, seed + 1_000_003, InstructionLanguage.German);
        var parts = Partitioner.Partition(train, clients, PartitionScheme.Iid, seed);
        var shards = new string[clients];
        for (int i = 0; i < clients; i++)
        {
            shards[i] = Path.Combine(folder, $"edge-{i + 1}.jsonl");
            InstructionData.WriteJsonLines(shards[i], parts[i].Select(j => train[j]));
        }
        return new DemoData(shards, heldOut);
    }
}
