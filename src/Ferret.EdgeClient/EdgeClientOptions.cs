using Ferret.Training.Data;
using Ferret.Training.Runtime;

namespace Ferret.EdgeClient;

/// <summary>How an edge client is started (the command line, see Program).</summary>
public sealed record EdgeClientOptions
{
    public required Uri Coordinator { get; init; }

    public required string Token { get; init; }

    /// <summary>The experiment to join; null picks the newest one that is not finished.</summary>
    public string? ExperimentId { get; init; }

    /// <summary>The artifact package folder; downloaded from the coordinator by fingerprint when missing.</summary>
    public required string ArtifactsDirectory { get; init; }

    public required string DataPath { get; init; }

    public DataFormat DataFormat { get; init; } = DataFormat.Auto;

    public MalformedRecords Malformed { get; init; } = MalformedRecords.Skip;

    public int MaxLength { get; init; } = 320;

    public SessionSettings Session { get; init; } = new();

    /// <summary>Exit once the experiment has ended (its last round, or a stop).</summary>
    public bool ExitWhenDone { get; init; } = true;

    /// <summary>Run the device self-test (<c>ferret doctor</c>) before joining; passes are cached.</summary>
    public bool DeviceCheck { get; init; } = true;

    /// <summary>Where passed device checks are remembered (default: <see cref="DeviceSelfTest.DefaultCacheDirectory"/>).</summary>
    public string? DeviceCheckCache { get; init; }

    /// <summary>Without an experiment id: wait for a new experiment when every one on the coordinator is finished (else exit).</summary>
    public bool WaitForExperiment { get; init; }

    /// <summary>When set, the final model is written here as a Hugging Face folder (and a package beside it) once the experiment ends.</summary>
    public string? SaveModelDirectory { get; init; }

    /// <summary>Replace an existing <see cref="SaveModelDirectory"/>.</summary>
    public bool OverwriteModel { get; init; }
}
