namespace Ferret.Training.Data;

/// <summary>The Alpaca prompt template the paper's setups use.</summary>
public static class PromptTemplate
{
    public static string Format(string instruction, string input) => string.IsNullOrWhiteSpace(input)
        ? "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n"
          + $"### Instruction:\n{instruction}\n\n### Response:\n"
        : "Below is an instruction that describes a task, paired with an input that provides further context. Write a response that appropriately completes the request.\n\n"
          + $"### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n";

    public static string Format(InstructionExample example)
    {
        ArgumentNullException.ThrowIfNull(example);
        return Format(example.Instruction, example.Input);
    }
}
