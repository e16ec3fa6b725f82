namespace Ferret.Core.Aggregation;

[System.Text.Json.Serialization.JsonConverter(typeof(System.Text.Json.Serialization.JsonStringEnumConverter<ScheduleKind>))]
public enum ScheduleKind
{
    Constant,
    Linear,
    Cosine,
}

/// <summary>
/// The server learning rate <c>slr_r</c> of round <c>r</c> (1-based) of <c>R</c>: constant, or linear / cosine
/// annealing from <see cref="Max"/> at round 1 to <see cref="Min"/> at round R.
/// </summary>
public sealed record LearningRateSchedule(ScheduleKind Kind, double Max, double Min, int Rounds)
{
    public static LearningRateSchedule Constant(double rate) => new(ScheduleKind.Constant, rate, rate, 1);

    public double At(int round)
    {
        if (!double.IsFinite(Max) || !double.IsFinite(Min) || Max < 0 || Min < 0)
            throw new ArgumentException($"Learning rates must be finite and non-negative (max {Max}, min {Min}).");
        if (Kind == ScheduleKind.Constant)
            return Max;
        ArgumentOutOfRangeException.ThrowIfLessThan(round, 1);
        if (Rounds <= 1)
            return Max;
        double progress = Math.Clamp((round - 1) / (double)(Rounds - 1), 0, 1);
        return Kind switch
        {
            ScheduleKind.Linear => Max + ((Min - Max) * progress),
            ScheduleKind.Cosine => Min + (0.5 * (Max - Min) * (1 + Math.Cos(Math.PI * progress))),
            _ => throw new InvalidOperationException($"Unknown schedule {Kind}."),
        };
    }
}
