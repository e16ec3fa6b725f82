using Ferret.Onnx.Artifacts;
using Ferret.Training;
using Ferret.Training.Data;
using Ferret.Training.Evaluation;
using Ferret.Training.Runtime;

namespace Ferret.Cli.Demo;

/// <summary>A model state scored on the held-out prompts: eval loss, exact match, Rouge-L, and every answer it gave.</summary>
internal sealed record HeldOutScore(double EvalLoss, double ExactMatch, double RougeL, IReadOnlyList<string> Answers);

/// <summary>Scores model states on the demo's held-out prompts, greedy answers decoded through the package's logits graph.</summary>
internal static class DemoEvaluation
{
    /// <summary>Longest answer (a doubled six-letter word) plus room for a wrong answer to show itself.</summary>
    private const int MaxNewTokens = 16;

    public static HeldOutScore Score(ArtifactPackage package, float[] parameters, IReadOnlyList<InstructionExample> heldOut, ExampleEncoder encoder)
    {
        var session = new SessionSettings { IntraOpThreads = 0 };
        using var trainer = new OnnxTrainer(package.Layout, package.TrainGraphPath, package.EvalGraphPath, session);
        parameters.CopyTo(trainer.Parameters, 0);
        double loss = CentralizedTraining.EvalLoss(trainer, heldOut.Select(encoder.Encode), encoder);
        using var generator = new GreedyGenerator(package.Layout, package.LogitsGraphPath, (float[])parameters.Clone(), package.Manifest.Tokenizer.VocabSize, session);
        var answers = heldOut.Select(e => encoder.Tokenizer.Decode(generator.Generate(encoder.EncodePrompt(e), MaxNewTokens, encoder.Tokenizer.EosId))).ToList();
        double exact = heldOut.Zip(answers, (e, a) => Metrics.ExactMatch(a, e.Output) ? 1.0 : 0.0).Average();
        double rouge = heldOut.Zip(answers, (e, a) => Metrics.RougeL(a, e.Output)).Average();
        return new HeldOutScore(loss, exact, rouge, answers);
    }
}
