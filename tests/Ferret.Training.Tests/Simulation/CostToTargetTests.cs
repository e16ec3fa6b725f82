using Ferret.Core.Algorithms;
using Ferret.Training.Data;
using Ferret.Training.Simulation;

namespace Ferret.Training.Tests.Simulation;

public sealed class CostToTargetTests
{
    // Round 0 is the start; each later round: participants 4 (+1 rejected), 2 s of compute, 40 + 40 passes, 1,000 bytes up and 3,000 down per client.
    private static SimulationResult Run(string algorithm, params double[] evalLoss)
    {
        var rounds = evalLoss.Select((loss, i) => i == 0
            ? new RoundReport(0, 0, loss, 0, 0, double.NaN, 0, 0, 0, 0, 0, 0, 0)
            : new RoundReport(i, 4, loss, 0.1 * i, 0.05 * i, 1, 1000, 3000, 2, 40, 40, 5, 1)).ToList();
        return new SimulationResult(algorithm, new SimulationOptions { Algorithm = algorithm }, rounds, "fp");
    }

    [Fact]
    public void Cost_sums_every_client_up_to_the_first_round_that_meets_the_target()
    {
        var run = Run("ferret", 5.0, 4.5, 3.9, 4.1, 3.5);
        var cost = TargetCost.Measure(run, new Target(TargetMeasure.EvalLoss, 4.0));
        Assert.True(cost.Reached, "eval loss 3.9 at round 2 meets a target of 4.0");
        Assert.Equal(2, cost.Rounds);
        Assert.Equal(2 * 4 * 2.0, cost.ClientComputeSeconds, 9);
        Assert.Equal(2 * 4 * 40.0, cost.ForwardPasses, 9);
        Assert.Equal(2 * 4 * 40.0, cost.BackwardPasses, 9);
        // Bytes count every sampled client, the rejected one included: 5 per round.
        Assert.Equal(2 * 5 * 1000.0, cost.BytesUp, 9);
        Assert.Equal(2 * 5 * 3000.0, cost.BytesDown, 9);
    }

    [Fact]
    public void A_target_never_met_is_not_reached_and_carries_the_whole_run()
    {
        var run = Run("fedkseed", 5.0, 4.9, 4.8);
        var cost = TargetCost.Measure(run, new Target(TargetMeasure.EvalLoss, 4.0));
        Assert.False(cost.Reached, "no round went below 4.8");
        Assert.Equal(2, cost.Rounds);
        Assert.Equal(2 * 4 * 2.0, cost.ClientComputeSeconds, 9);
    }

    [Fact]
    public void A_start_that_already_meets_the_target_costs_nothing()
    {
        var cost = TargetCost.Measure(Run("ferret", 3.0, 2.9), new Target(TargetMeasure.EvalLoss, 4.0));
        Assert.True(cost.Reached, "round 0 at 3.0 meets 4.0");
        Assert.Equal(0, cost.Rounds);
        Assert.Equal(0, cost.BytesUp);
    }

    [Fact]
    public void Metric_targets_are_met_from_below()
    {
        var run = Run("ferret", 5.0, 4.5, 4.0, 3.5);
        Assert.Equal(2, TargetCost.Measure(run, new Target(TargetMeasure.RougeL, 0.2)).Rounds);
        Assert.Equal(3, TargetCost.Measure(run, new Target(TargetMeasure.ExactMatch, 0.15)).Rounds);
        Assert.False(TargetCost.Measure(run, new Target(TargetMeasure.ExactMatch, 0.5)).Reached, "exact match peaks at 0.15");
    }

    [Fact]
    public void The_default_target_is_the_highest_final_eval_loss_so_every_run_reaches_it()
    {
        var runs = new[] { Run("ferret", 5.0, 4.0, 3.0), Run("fedkseed", 5.0, 4.8, 4.6), Run("fedavg", 5.0, 3.5, 2.5) };
        var target = TargetCost.DefaultTarget(runs);
        Assert.Equal(new Target(TargetMeasure.EvalLoss, 4.6), target);
        Assert.All(runs, r => Assert.True(TargetCost.Measure(r, target).Reached, $"{r.Algorithm} should reach {target.Describe()}"));
        Assert.Equal(1, TargetCost.Measure(runs[0], target).Rounds);
        Assert.Equal(2, TargetCost.Measure(runs[1], target).Rounds);
    }

    [Fact]
    public void Paper_presets_carry_the_papers_hyper_parameters()
    {
        var ni = PaperProtocol.Get("NI");
        var ferret = ni.Settings(FederatedAlgorithms.Ferret);
        Assert.Equal((10, 4, 1e-4, 200, 10.0), (ferret.LocalSteps, ferret.MicroBatches, ferret.LocalLearningRate, ferret.CandidateSeeds, ferret.ServerLearningRate));
        Assert.Equal((0.05, 12, 40), (ni.Fraction, ni.Rounds(FederatedAlgorithms.Ferret), ni.Rounds(FederatedAlgorithms.FedKSeed)));
        Assert.Equal(PartitionScheme.ByCategory, ni.Partition);
        var kseed = ni.Settings(FederatedAlgorithms.FedKSeed);
        Assert.Equal((200, 3e-7, 4096), (kseed.LocalSteps, kseed.LocalLearningRate, kseed.CandidateSeeds));

        var dolly = PaperProtocol.Get("dolly");
        Assert.Equal(3.0, dolly.Settings(FederatedAlgorithms.Ferret).ServerLearningRate);
        Assert.Equal((200, 20, 60, PartitionScheme.Dirichlet, 0.5), (dolly.ClientsFor([]), dolly.Rounds(FederatedAlgorithms.Ferret), dolly.Rounds(FederatedAlgorithms.FedAvg), dolly.Partition, dolly.DirichletAlpha));
        Assert.Throws<ArgumentException>(() => PaperProtocol.Get("alpaca"));
    }

    [Fact]
    public void Natural_instructions_gives_every_task_its_own_client()
    {
        var train = new[] { "task1", "task2", "task2", "task3" }.Select(c => new InstructionExample("i", "", "o", c)).ToList();
        Assert.Equal(3, PaperProtocol.NaturalInstructions.ClientsFor(train));
    }
}
