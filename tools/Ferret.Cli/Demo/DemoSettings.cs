using Ferret.Core.Algorithms;

namespace Ferret.Cli.Demo;

/// <summary>
/// The demo's hyper-parameters per algorithm, chosen so the pretrained base learns its new instructions within
/// the demo's few minutes (docs/results.md shows the runs behind them).
/// </summary>
internal static class DemoSettings
{
    public const int Rounds = 6;

    public static AlgorithmSettings For(string algorithm)
    {
        var settings = FederatedAlgorithms.ReferenceSettings(algorithm);
        switch (algorithm)
        {
            case FederatedAlgorithms.Ferret:
                settings.LocalSteps = 10;
                settings.MicroBatches = 4;
                settings.LocalLearningRate = 0.01;
                settings.CandidateSeeds = 200;
                settings.ServerLearningRate = 3;
                break;
            case FederatedAlgorithms.FedAvg:
                settings.LocalSteps = 10;
                settings.MicroBatches = 4;
                settings.LocalLearningRate = 0.01;
                break;
            default:
                settings.LocalLearningRate = 2e-5;
                break;
        }
        settings.Validate();
        return settings;
    }
}
