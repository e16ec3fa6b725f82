using Ferret.Core.Algorithms;
using Ferret.Training.Data;
using Ferret.Training.Simulation;
using Ferret.Training.Tokenization;

namespace Ferret.Training.Tests.Simulation;

public sealed class SimulationTests(ArtifactFixture artifacts, Xunit.Abstractions.ITestOutputHelper output) : IClassFixture<ArtifactFixture>
{
    private static SimulationOptions Short(string algorithm, int rounds) => new()
    {
        Algorithm = algorithm,
        Settings = Tuned(FederatedAlgorithms.ReferenceSettings(algorithm)),
        Clients = 4,
        Fraction = 0.5,
        Rounds = rounds,
        EvalExamples = 16,
        GenerateExamples = 2,
        MaxNewTokens = 4,
        MaxLength = 320,
        Session = new Ferret.Training.Runtime.SessionSettings { IntraOpThreads = 2 },
    };

    private static AlgorithmSettings Tuned(AlgorithmSettings s)
    {
        s.LocalSteps = 8;
        s.MicroBatches = 2;
        s.LocalLearningRate = 0.05;
        s.ServerLearningRate = 3;
        return s;
    }

    [Fact]
    public void A_short_ferret_simulation_lowers_the_eval_loss_and_sends_kilobytes()
    {
        var package = artifacts.Get("tiny-llama");
        var train = SyntheticTasks.Sample(SyntheticTasks.Names, 200, 1);
        var test = SyntheticTasks.Sample(SyntheticTasks.Names, 16, 2);
        var result = Simulator.Run(package, train, test, Short(FederatedAlgorithms.Ferret, 3), Tokenizers.FromPackage(package));
        Assert.Equal(4, result.Rounds.Count);
        output.WriteLine(string.Join(" -> ", result.Rounds.Select(r => r.EvalLoss.ToString("F4", System.Globalization.CultureInfo.InvariantCulture))));
        Assert.True(result.Rounds[^1].EvalLoss < result.Rounds[0].EvalLoss - 0.25, $"eval loss {result.Rounds[0].EvalLoss} -> {result.Rounds[^1].EvalLoss}");
        Assert.All(result.Rounds.Skip(1), r =>
        {
            Assert.Equal(2, r.Participants);
            Assert.InRange(r.BytesUpPerClient, 100, 64 * 1024);
            Assert.Equal(16, r.ForwardPassesPerClient);
        });
    }

    [Fact]
    public void Ferret_uploads_less_than_a_thousandth_of_fedavg()
    {
        var package = artifacts.Get("tiny-llama");
        var train = SyntheticTasks.Sample(SyntheticTasks.Names, 40, 1);
        var test = SyntheticTasks.Sample(SyntheticTasks.Names, 4, 2);
        var tokenizer = Tokenizers.FromPackage(package);
        // One client, one round, the reference local work (T = 10 steps of 4 micro-batches) for Ferret;
        // FedAvg's packet is the full delta whatever its local work, so one step shows its size.
        SimulationOptions Quick(string a)
        {
            var s = Tuned(FederatedAlgorithms.ReferenceSettings(a));
            s.LocalSteps = a == FederatedAlgorithms.Ferret ? 10 : 1;
            s.MicroBatches = a == FederatedAlgorithms.Ferret ? 4 : 1;
            return Short(a, 1) with { Fraction = 0.25, GenerateExamples = 0, EvalExamples = 2, Settings = s };
        }

        var ferret = Simulator.Run(package, train, test, Quick(FederatedAlgorithms.Ferret), tokenizer);
        var fedavg = Simulator.Run(package, train, test, Quick(FederatedAlgorithms.FedAvg), tokenizer);
        double ratio = ferret.Rounds[1].BytesUpPerClient / fedavg.Rounds[1].BytesUpPerClient;
        Assert.True(ratio < 1e-3, $"Ferret {ferret.Rounds[1].BytesUpPerClient} B vs FedAvg {fedavg.Rounds[1].BytesUpPerClient} B");
        Assert.InRange(fedavg.Rounds[1].BytesUpPerClient, 4.0 * package.Layout.TotalLength, (4.0 * package.Layout.TotalLength) + 256);
    }
}
