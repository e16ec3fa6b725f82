using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text.Json;
using Ferret.Cli.Demo;
using Ferret.Core.Algorithms;
using Ferret.Core.Packets;
using Ferret.Core.Protocol;
using Ferret.Onnx.Artifacts;
using Ferret.Onnx.Export;
using Ferret.Training.Data;
using Microsoft.AspNetCore.SignalR.Client;
using Microsoft.Extensions.DependencyInjection;

namespace Ferret.Cli.Reliability;

/// <summary>
/// What every reliability harness stands on: a scratch folder with the tiny-gpt2 package, a coordinator
/// process (the demo's <see cref="CoordinatorProcess"/>) on a fixed loopback port so a restart comes back at
/// the same address on the same round log, an admin client, enrolment, experiments and hub connections
/// built on <see cref="RoundsProtocol"/>, and edge-client processes (<see cref="Deployables"/>).
/// </summary>
internal sealed class Testbed : IDisposable
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);
    private readonly List<ChildProcess> _processes = [];
    private readonly IReadOnlyList<string> _settings;

    public Testbed(string name, IReadOnlyList<string>? coordinatorSettings = null)
    {
        Directory = System.IO.Directory.CreateTempSubdirectory($"ferret-{name}-").FullName;
        AdminKey = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16));
        SecretFile.Write(Path.Combine(Directory, "admin-key.txt"), AdminKey);
        Package = ModelExporter.Export(new ModelSource.FromPreset("tiny-gpt2", 1), Path.Combine(ArtifactsRoot, "tiny-gpt2"), overwrite: false);
        using (var probe = new TcpListener(IPAddress.Loopback, 0))
        {
            probe.Start();
            Url = new Uri($"http://127.0.0.1:{((IPEndPoint)probe.LocalEndpoint).Port}/");
        }
        _settings = ["--Ferret:EngineTickMilliseconds", "100", "--Logging:LogLevel:Default", "Warning", "--Logging:LogLevel:Microsoft.Hosting.Lifetime", "Information",
            .. coordinatorSettings ?? []];
        Admin = new HttpClient { BaseAddress = Url, Timeout = TimeSpan.FromMinutes(5) };
        Admin.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", AdminKey);
    }

    public string Directory { get; }

    public string AdminKey { get; }

    public Uri Url { get; }

    public HttpClient Admin { get; }

    public ArtifactPackage Package { get; }

    public string ArtifactsRoot => Path.Combine(Directory, "artifacts");

    public string DatabasePath => Path.Combine(Directory, "coordinator.db");

    public ChildProcess? Coordinator { get; private set; }

    /// <summary>Keep the scratch folder (round log, process logs) after the run.</summary>
    public bool Keep { get; init; }

    public string PathOf(string name) => Path.Combine(Directory, name);

    /// <summary>Starts the coordinator (again) on the same port and round log; <paramref name="extra"/> adds settings (kill points).</summary>
    public async Task<ChildProcess> StartCoordinatorAsync(string logName, IEnumerable<string>? extra = null, CancellationToken ct = default)
    {
        var (process, _) = await CoordinatorProcess.StartAsync(logName, Url.ToString().TrimEnd('/'), AdminKey, DatabasePath, ArtifactsRoot,
            PathOf(logName + ".log"), [.. _settings, .. extra ?? []], ct).ConfigureAwait(false);
        _processes.Add(process);
        Coordinator = process;
        return process;
    }

    /// <summary>Creates an experiment over the tiny-gpt2 package; <paramref name="settings"/> is the request body (artifact filled in).</summary>
    public async Task<ExperimentDescriptor> CreateExperimentAsync(Dictionary<string, object?> settings, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(settings);
        settings["artifact"] = "tiny-gpt2";
        var created = await CoordinatorProcess.PostAsync(Admin, "api/experiments", settings, ct).ConfigureAwait(false);
        return await DescriptorAsync(created.GetProperty("id").GetString()!, ct).ConfigureAwait(false);
    }

    public async Task<ExperimentDescriptor> DescriptorAsync(string id, CancellationToken ct) =>
        Wire.Deserialize<ExperimentDescriptor>(await Admin.GetByteArrayAsync(new Uri($"api/experiments/{id}/descriptor", UriKind.Relative), ct).ConfigureAwait(false));

    /// <summary>Enrols a client; returns its id and token.</summary>
    public async Task<(string ClientId, string Token)> EnrolAsync(string name, CancellationToken ct)
    {
        var enrolment = await CoordinatorProcess.PostAsync(Admin, "api/enrolments", new { label = name }, ct).ConfigureAwait(false);
        using var anonymous = new HttpClient { BaseAddress = Url };
        var client = await CoordinatorProcess.PostAsync(anonymous, "api/clients/enrol", new { enrolmentToken = enrolment.GetProperty("token").GetString(), name }, ct)
            .ConfigureAwait(false);
        return (client.GetProperty("clientId").GetString()!, client.GetProperty("token").GetString()!);
    }

    /// <summary>A hub connection (WebSockets, MessagePack) with a bearer token; not started.</summary>
    public HubConnection Hub(string token, bool reconnect = false)
    {
        var builder = new HubConnectionBuilder()
            .WithUrl(new Uri(Url, RoundsProtocol.Path), o => o.AccessTokenProvider = () => Task.FromResult<string?>(token))
            .AddMessagePackProtocol();
        if (reconnect)
            builder.WithAutomaticReconnect(new ForeverRetry());
        return builder.Build();
    }

    /// <summary>Writes <paramref name="count"/> data shards of synthetic tasks; returns their paths.</summary>
    public string[] WriteShards(int count)
    {
        var examples = SyntheticTasks.Sample(["reverse", "upper", "copy"], 40 * count, 3);
        var shards = new string[count];
        for (int i = 0; i < count; i++)
        {
            shards[i] = PathOf($"edge-{i + 1}.jsonl");
            SyntheticTasks.WriteJsonLines(shards[i], examples.Skip(40 * i).Take(40));
        }
        return shards;
    }

    /// <summary>Starts an edge-client process with a token file written beforehand (so a restart is the same client).</summary>
    public ChildProcess StartEdge(string name, string experimentId, string tokenFile, string artifacts, string data, Action<string>? onLine = null)
    {
        var process = new ChildProcess(name, Deployables.EdgeClient,
            ["--coordinator", Url.ToString(), "--token-file", tokenFile, "--experiment", experimentId, "--artifacts", artifacts, "--data", data,
             "--max-length", "64", "--threads", "1", "--name", name],
            PathOf(name + ".log"), onLine);
        _processes.Add(process);
        return process;
    }

    /// <summary>GET as JSON, or null while the coordinator does not answer.</summary>
    public async Task<JsonElement?> TryGetAsync(string path, CancellationToken ct)
    {
        try
        {
            return await Admin.GetFromJsonAsync<JsonElement>(new Uri(path, UriKind.Relative), Json, ct).ConfigureAwait(false);
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException && !ct.IsCancellationRequested)
        {
            return null;
        }
    }

    public void Dispose()
    {
        foreach (var p in _processes.AsEnumerable().Reverse())
            p.Dispose();
        Admin.Dispose();
        if (Keep)
            return;
        try
        {
            System.IO.Directory.Delete(Directory, recursive: true);
        }
        catch (IOException)
        {
            // a process may hold a file a moment longer; the temp cleaner gets it
        }
    }

    private sealed class ForeverRetry : IRetryPolicy
    {
        public TimeSpan? NextRetryDelay(RetryContext retryContext) => TimeSpan.FromMilliseconds(Math.Min(2000, 100 * (retryContext.PreviousRetryCount + 1)));
    }
}
