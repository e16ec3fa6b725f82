using System.Text.Json;
using System.Text.Json.Serialization;

namespace Ferret.Cli.Demo;

/// <summary>One completed round as the demo saw it from the coordinator's events.</summary>
internal sealed record DemoRound(
    int Round, int Packets, int Assigned, double? TrainLoss, long BytesUp, long BytesDown, double LatencySeconds, int FingerprintsReported, bool FingerprintsAgree);

/// <summary>A held-out prompt with the model's answers before and after tuning.</summary>
internal sealed record DemoExample(string Task, string Instruction, string Input, string Expected, string Before, string After);

/// <summary>
/// What <c>ferret demo --json FILE</c> writes (snake_case keys): the algorithm, rounds, the held-out score's
/// name and its value before and after, eval loss before and after, the tuned model's fingerprint, the
/// demo's wall time, per round packets, bytes and latency, and the held-out prompts it printed.
/// </summary>
internal sealed record DemoSummary(
    string Algorithm, int Rounds, int Clients, string Metric, double MetricBefore, double MetricAfter, double EvalLossBefore, double EvalLossAfter,
    string Fingerprint, double Seconds, int HeldOutPrompts, IReadOnlyList<DemoRound> PerRound, IReadOnlyList<DemoExample> Examples)
{
    private static readonly JsonSerializerOptions Options = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    public string ToJson() => JsonSerializer.Serialize(this, Options);

    /// <summary>Writes the summary atomically: a reader sees the whole file or the previous one.</summary>
    public void Write(string path)
    {
        var full = Path.GetFullPath(path);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        var tmp = full + ".tmp-" + Guid.NewGuid().ToString("N")[..8];
        try
        {
            File.WriteAllText(tmp, ToJson());
            File.Move(tmp, full, overwrite: true);
        }
        finally
        {
            File.Delete(tmp);
        }
    }
}
