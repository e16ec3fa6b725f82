namespace Ferret.Training.Data;

/// <summary>
/// One instruction-tuning example in the shape every supported format maps to: an instruction, optional
/// input (context), the expected response, and the category or task it belongs to.
/// </summary>
public sealed record InstructionExample(string Instruction, string Input, string Output, string Category)
{
    /// <summary>Where the example came from (file and line), for error messages.</summary>
    public string Source { get; init; } = "";

    /// <summary>
    /// Plain text (<see cref="Output"/>) for language-model pretraining: no prompt template, every token
    /// trained on.
    /// </summary>
    public bool IsPlainText { get; init; }

    /// <summary>A plain-text document for pretraining.</summary>
    public static InstructionExample PlainText(string text, string category = "text") => new("", "", text, category) { IsPlainText = true };
}
