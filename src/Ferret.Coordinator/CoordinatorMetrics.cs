using System.Diagnostics.Metrics;

namespace Ferret.Coordinator;

/// <summary>
/// The coordinator's own instruments (meter <c>Ferret.Coordinator</c>), exported with ASP.NET Core's and the
/// runtime's through OpenTelemetry: Prometheus at <c>/metrics</c>, OTLP when <c>OTEL_EXPORTER_OTLP_ENDPOINT</c> is set.
/// </summary>
public static class CoordinatorMetrics
{
    public const string MeterName = "Ferret.Coordinator";

    private static readonly Meter Meter = new(MeterName);

    public static Counter<long> RoundsCompleted { get; } = Meter.CreateCounter<long>("ferret.rounds.completed", description: "Rounds whose global update was stored.");

    public static Counter<long> RoundsAbandoned { get; } = Meter.CreateCounter<long>("ferret.rounds.abandoned", description: "Rounds closed without a global update.");

    public static Histogram<double> RoundDuration { get; } = Meter.CreateHistogram<double>("ferret.round.duration", "s", "From a round's opening to its global update being stored.");

    public static Counter<long> PacketsAccepted { get; } = Meter.CreateCounter<long>("ferret.packets.accepted", description: "Client packets accepted at the door.");

    public static Counter<long> PacketsRejected { get; } = Meter.CreateCounter<long>("ferret.packets.rejected", description: "Client packets rejected at the door, with a reason.");

    public static Counter<long> PacketBytes { get; } = Meter.CreateCounter<long>("ferret.packets.bytes", "By", "Bytes of accepted client packets.");

    public static Counter<long> HubCallsLimited { get; } = Meter.CreateCounter<long>("ferret.hub.calls.limited", description: "Hub calls refused because a connection called too fast.");

    public static Counter<long> AuthenticationsLimited { get; } = Meter.CreateCounter<long>("ferret.auth.limited", description: "Requests refused (429) from addresses with too many failed authentications.");
}
