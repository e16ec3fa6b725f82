namespace Ferret.Coordinator.ScaleOut;

/// <summary>The instance that owns an experiment and its lease, as the operators' API shows it.</summary>
public sealed record ExperimentOwner(string InstanceId, DateTimeOffset AcquiredUtc, DateTimeOffset ExpiresUtc);

/// <summary>
/// Which coordinator instance runs an experiment's rounds. Exactly one instance at a time opens, closes and
/// aggregates an experiment's rounds (its owner); every instance accepts packets, records them in the shared
/// round log and nudges the owner.
/// </summary>
public interface IExperimentOwnership
{
    /// <summary>This instance's name among its peers.</summary>
    string InstanceId { get; }

    /// <summary>Whether this instance may open, close and aggregate the experiment's rounds now.</summary>
    bool Owns(string experimentId);

    /// <summary>Something changed in the experiment (a packet, a failure, a join): wakes its owner, wherever it runs.</summary>
    void Nudge(string experimentId);

    /// <summary>
    /// Raised on this instance when it should look at an experiment now: it was nudged, or (second argument
    /// true) it has just become the owner and must reload the experiment from the round log.
    /// </summary>
    event Action<string, bool>? Woken;

    /// <summary>The owner and its lease, or null when none holds one (or the coordinator runs alone).</summary>
    ExperimentOwner? OwnerOf(string experimentId);
}

/// <summary>A coordinator that runs alone (SQLite round log) owns every experiment.</summary>
public sealed class SoleCoordinator(string instanceId) : IExperimentOwnership
{
    public string InstanceId { get; } = instanceId;

    public event Action<string, bool>? Woken;

    public bool Owns(string experimentId) => true;

    public void Nudge(string experimentId) => Woken?.Invoke(experimentId, false);

    public ExperimentOwner? OwnerOf(string experimentId) => null;
}
