namespace Ferret.Training.Simulation;

/// <summary>The held-out score a target is set on.</summary>
public enum TargetMeasure
{
    /// <summary>Eval loss, reached when it falls to the target or below.</summary>
    EvalLoss,

    /// <summary>Rouge-L of generated answers, reached when it rises to the target or above.</summary>
    RougeL,

    /// <summary>Exact match of generated answers, reached when it rises to the target or above.</summary>
    ExactMatch,
}

/// <summary>A score every run in a comparison is asked to reach.</summary>
public sealed record Target(TargetMeasure Measure, double Value)
{
    public string Name => Measure switch
    {
        TargetMeasure.EvalLoss => "eval loss",
        TargetMeasure.RougeL => "Rouge-L",
        _ => "exact match",
    };

    /// <summary>"eval loss &lt;= 4.2", "Rouge-L &gt;= 0.3".</summary>
    public string Describe() => FormattableString.Invariant($"{Name} {(Measure == TargetMeasure.EvalLoss ? "<=" : ">=")} {Value:0.####}");

    public double Of(RoundReport round)
    {
        ArgumentNullException.ThrowIfNull(round);
        return Measure switch
        {
            TargetMeasure.EvalLoss => round.EvalLoss,
            TargetMeasure.RougeL => round.RougeL,
            _ => round.ExactMatch,
        };
    }

    public bool IsMetBy(RoundReport round)
    {
        double v = Of(round);
        return !double.IsNaN(v) && (Measure == TargetMeasure.EvalLoss ? v <= Value : v >= Value);
    }
}

/// <summary>
/// What one run spent to reach a target, summed over every client from round 1 to the first round that met
/// it: rounds, client compute, forward and backward passes, packets sent up, and global updates delivered
/// down to the round's sampled clients. <see cref="Reached"/> is false when no round met it; the sums are then
/// the whole run's.
/// </summary>
public sealed record TargetCost(
    string Algorithm, bool Reached, int Rounds, double ClientComputeSeconds, double ForwardPasses, double BackwardPasses, double BytesUp, double BytesDown)
{
    /// <summary>The round-by-round running totals of a run, round 0 (nothing spent) first.</summary>
    public static IReadOnlyList<TargetCost> Cumulative(SimulationResult result)
    {
        ArgumentNullException.ThrowIfNull(result);
        var totals = new List<TargetCost>(result.Rounds.Count);
        double compute = 0, forward = 0, backward = 0, up = 0, down = 0;
        foreach (var r in result.Rounds)
        {
            if (r.Round > 0)
            {
                int sampled = r.Participants + r.Rejected;
                compute += r.ClientComputeSeconds * r.Participants;
                forward += r.ForwardPassesPerClient * r.Participants;
                backward += r.BackwardPassesPerClient * r.Participants;
                up += r.BytesUpPerClient * sampled;
                down += r.BytesDownPerClient * sampled;
            }
            totals.Add(new TargetCost(result.Label, false, r.Round, compute, forward, backward, up, down));
        }
        return totals;
    }

    /// <summary>The cost of the first round that met <paramref name="target"/> (round 0 if the start already did).</summary>
    public static TargetCost Measure(SimulationResult result, Target target)
    {
        ArgumentNullException.ThrowIfNull(result);
        ArgumentNullException.ThrowIfNull(target);
        var totals = Cumulative(result);
        for (int i = 0; i < result.Rounds.Count; i++)
        {
            if (target.IsMetBy(result.Rounds[i]))
                return totals[i] with { Reached = true };
        }
        return totals[^1];
    }

    /// <summary>
    /// The default target of a comparison: the eval loss the slowest run reaches at its last round (the highest
    /// final eval loss), so every run is measured against a score all of them attained.
    /// </summary>
    public static Target DefaultTarget(IReadOnlyList<SimulationResult> results)
    {
        ArgumentNullException.ThrowIfNull(results);
        var finals = results.Select(r => r.Rounds[^1].EvalLoss).Where(double.IsFinite).ToList();
        if (finals.Count == 0)
            throw new ArgumentException("No run ended with a finite eval loss; give a target explicitly.", nameof(results));
        return new Target(TargetMeasure.EvalLoss, finals.Max());
    }
}
