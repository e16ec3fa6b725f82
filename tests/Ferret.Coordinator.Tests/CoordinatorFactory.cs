using System.Net.Http.Headers;
using System.Net.Http.Json;
using Ferret.Coordinator.Clients;
using Ferret.Core.Protocol;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http.Connections;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.AspNetCore.SignalR.Client;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Ferret.Coordinator.Tests;

/// <summary>
/// The coordinator hosted in-process on a fresh round log. <paramref name="settings"/> override configuration
/// (<c>Ferret:HubCallsPerSecond</c>...), <paramref name="clock"/> replaces the coordinator's time (fake time),
/// and every log entry at any level is kept in <see cref="Logs"/>.
/// </summary>
internal sealed class CoordinatorFactory(bool runRounds = true, IReadOnlyDictionary<string, string>? settings = null, TimeProvider? clock = null,
    string? contentRoot = null)
    : WebApplicationFactory<Program>
{
    public const string AdminKey = "test-admin-key";
    public const long MaxMessageBytes = 256 * 1024;
    public const long MaxPacketBytes = 8 * 1024 * 1024;
    private readonly TempDirectory _dir = new();

    public LogCapture Logs { get; } = new();

    public string DatabasePath => _dir.File("coordinator.db");

    public string ArtifactsDirectory => _dir.Path;

    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        builder.UseEnvironment("Production");
        builder.UseSetting("Ferret:DatabasePath", DatabasePath);
        builder.UseSetting("Ferret:AdminKey", AdminKey);
        builder.UseSetting("Ferret:ArtifactsDirectory", _dir.Path);
        builder.UseSetting("Ferret:MaxPacketBytes", MaxPacketBytes.ToString(System.Globalization.CultureInfo.InvariantCulture));
        builder.UseSetting("Ferret:RunRounds", runRounds ? "true" : "false");
        builder.UseSetting("Ferret:EngineTickMilliseconds", "50");
        builder.UseSetting("Ferret:MaxMessageBytes", MaxMessageBytes.ToString(System.Globalization.CultureInfo.InvariantCulture));
        foreach (var (key, value) in settings ?? new Dictionary<string, string>())
            builder.UseSetting(key, value);
        builder.ConfigureLogging(logging => logging.AddProvider(Logs));
        if (contentRoot is not null)
            builder.UseContentRoot(contentRoot);
        if (clock is not null)
            builder.ConfigureServices(services => services.AddSingleton(clock));
    }

    public HttpClient Admin()
    {
        var c = CreateClient();
        c.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", AdminKey);
        return c;
    }

    public HttpClient WithToken(string token)
    {
        var c = CreateClient();
        c.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        return c;
    }

    /// <summary>A hub connection through the in-memory test server (long polling), with a bearer token or none.</summary>
    public HubConnection ConnectHub(string? token) => new HubConnectionBuilder()
        .WithUrl(new Uri(Server.BaseAddress, RoundsProtocol.Path), o =>
        {
            o.HttpMessageHandlerFactory = _ => Server.CreateHandler();
            o.Transports = HttpTransportType.LongPolling;
            if (token is not null)
                o.AccessTokenProvider = () => Task.FromResult<string?>(token);
        })
        .AddMessagePackProtocol()
        .Build();

    /// <summary>Issues an enrolment token and redeems it: a new client's id and token.</summary>
    public async Task<EnrolResponse> EnrolAsync(string name)
    {
        var enrolment = (await (await Admin().PostAsJsonAsync("/api/enrolments", new EnrolmentRequest(null, null))).Content.ReadFromJsonAsync<EnrolmentResponse>())!;
        return (await (await CreateClient().PostAsJsonAsync("/api/clients/enrol", new { enrolmentToken = enrolment.Token, name })).Content.ReadFromJsonAsync<EnrolResponse>())!;
    }

    protected override void Dispose(bool disposing)
    {
        base.Dispose(disposing);
        if (disposing)
            _dir.Dispose();
    }
}
