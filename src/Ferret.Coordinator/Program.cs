using Ferret.Coordinator;
using Ferret.Coordinator.Access;
using Ferret.Coordinator.Artifacts;
using Ferret.Coordinator.Clients;
using Ferret.Coordinator.Dashboard;
using Ferret.Coordinator.Experiments;
using Ferret.Coordinator.Persistence;
using Ferret.Coordinator.Privacy;
using Ferret.Coordinator.Rounds;
using Ferret.Coordinator.ScaleOut;
using Ferret.Coordinator.Security;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.SignalR;
using Microsoft.Extensions.Options;
using OpenTelemetry;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;

// Paths in the settings are the user's: relative ones resolve against the folder the coordinator was started in
// (`dotnet run` starts it there too, see RunWorkingDirectory), while its own files (appsettings.json) come from
// beside the binary. A test host names its own content root.
var builder = WebApplication.CreateBuilder(new WebApplicationOptions
{
    Args = args,
    ContentRootPath = args.Any(a => a.Contains("contentRoot", StringComparison.OrdinalIgnoreCase)) ? null : AppContext.BaseDirectory,
});
LogScrubbing.Configure(builder);

builder.Services.AddOptions<CoordinatorOptions>()
    .Bind(builder.Configuration.GetSection(CoordinatorOptions.Section))
    .PostConfigure(Secrets.ReadAdminKeyFile)
    .PostConfigure(o => o.ResolvePaths(Environment.CurrentDirectory))
    .ValidateDataAnnotations()
    .Validate(o => builder.Environment.IsDevelopment() || !string.IsNullOrEmpty(o.AdminKey), "Ferret:AdminKey is required outside Development (Ferret__AdminKey or Ferret:AdminKeyFile).")
    .ValidateOnStart();
KillSwitch.Arm(builder.Configuration["Ferret:KillAt"]);
builder.Services.AddSingleton(TimeProvider.System);
builder.Services.AddRoundLog(sp => sp.GetRequiredService<IOptions<CoordinatorOptions>>().Value.RoundLogSetting);
builder.Services.AddAuthentication(BearerAuthenticationHandler.SchemeName)
    .AddScheme<AuthenticationSchemeOptions, BearerAuthenticationHandler>(BearerAuthenticationHandler.SchemeName, null);
builder.Services.AddAuthorization(Policies.Add);
builder.Services.AddSingleton<FailedAuthenticationLimiter>();
builder.Services.AddSingleton<RequestBodyLimit>();
builder.Services.AddProblemDetails();
// The REST API's JSON: ASP.NET Core's camelCase, enums as their names.
builder.Services.ConfigureHttpJsonOptions(o => o.SerializerOptions.Converters.Add(new System.Text.Json.Serialization.JsonStringEnumConverter()));
builder.Services.AddOpenApi(OpenApiDocumentation.Configure);
builder.Services.AddDashboard();
builder.Services.AddHealthChecks()
    .AddCheck<RoundLogHealthCheck>("round-log");
var telemetry = builder.Services.AddOpenTelemetry()
    .ConfigureResource(r => r.AddService("ferret-coordinator"))
    .WithMetrics(m => m.AddMeter(CoordinatorMetrics.MeterName).AddAspNetCoreInstrumentation().AddRuntimeInstrumentation().AddPrometheusExporter());
if (!string.IsNullOrEmpty(builder.Configuration["OTEL_EXPORTER_OTLP_ENDPOINT"]))
    telemetry.UseOtlpExporter();
builder.Services.AddSingleton<SecureRounds>();
builder.Services.AddSingleton<ExperimentAlgorithms>();
builder.Services.AddSingleton<DatabaseGate>();
builder.Services.AddSingleton<ClientConnections>();
builder.Services.AddSingleton<PacketDoor>();
builder.Services.AddSingleton<RejectionWriter>();
builder.Services.AddSingleton<ArtifactIndex>();
builder.Services.AddSingleton<RoundEngine>();
builder.Services.AddHostedService(sp => sp.GetRequiredService<RoundEngine>());
builder.Services.AddSingleton<HubCallLimiter>();
// SignalR's own limit sits above the packet limit, so an oversized packet still gets a reason back;
// only a message past twice the limit closes the connection.
var signalR = builder.Services.AddSignalR(o =>
    {
        o.MaximumReceiveMessageSize = (2 * (builder.Configuration.GetValue<long?>("Ferret:MaxMessageBytes") ?? new CoordinatorOptions().MaxMessageBytes)) + (64 * 1024);
        o.AddFilter<HubCallLimiter>();
    })
    .AddMessagePackProtocol();
// Alone on SQLite, or one of several instances on PostgreSQL (leases, shared participants) with Redis between their hubs.
builder.Services.AddScaleOut(signalR, builder.Configuration.GetSection(CoordinatorOptions.Section).Get<CoordinatorOptions>() ?? new CoordinatorOptions());

var app = builder.Build();

app.UseExceptionHandler();
app.UseStatusCodePages();
var failedAuthentications = app.Services.GetRequiredService<FailedAuthenticationLimiter>();
var bodyLimit = app.Services.GetRequiredService<RequestBodyLimit>();
app.Use((context, next) => failedAuthentications.InvokeAsync(context, () => next(context)));
app.Use((context, next) => bodyLimit.InvokeAsync(context, () => next(context)));
app.UseDashboard();
app.UseAuthentication();
app.UseAuthorization();

app.MapOpenApi().AllowAnonymous();
app.MapHealthChecks("/health").WithSummary("Health, including a query of the round log.").AllowAnonymous();
app.MapPrometheusScrapingEndpoint("/metrics").AllowAnonymous();
app.MapClients();
app.MapExperiments();
app.MapArtifacts();
app.MapAccess();
app.MapHub<RoundsHub>(RoundsHub.Path);

StartupLog.Paths(app.Logger, app.Services.GetRequiredService<IOptions<CoordinatorOptions>>().Value, app.Services.GetRequiredService<ArtifactIndex>());
app.Run();

/// <summary>Entry point; public so integration tests can host the coordinator in-process.</summary>
public partial class Program;
