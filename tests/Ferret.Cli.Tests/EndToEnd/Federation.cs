using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Text.Json;
using Ferret.Cli.Demo;
using Ferret.Core.Algorithms;
using Ferret.Core.Packets;
using Ferret.Core.Parameters;
using Ferret.Core.Protocol;
using Ferret.Onnx.Artifacts;
using Ferret.Onnx.Export;
using Ferret.Tests;
using Ferret.Training.Data;
using Microsoft.AspNetCore.SignalR.Client;
using Microsoft.Extensions.DependencyInjection;

namespace Ferret.Cli.Tests.EndToEnd;

/// <summary>
/// A coordinator (or several instances of one) and edge clients as real processes on loopback, in a scratch
/// folder: the tiny-gpt2 preset, synthetic data shards, the coordinators' round log (a SQLite file, or a
/// PostgreSQL database of its own with Redis between the instances), and every process's log. Disposing kills
/// whatever still runs.
/// </summary>
internal sealed class Federation : IDisposable
{
    public const string AdminKey = "end-to-end-admin-key";
    private readonly string _dir = Directory.CreateTempSubdirectory("ferret-e2e-").FullName;
    private readonly List<ChildProcess> _processes = [];
    private readonly string[] _scaleOut;

    /// <param name="shards">Data shards, one per edge client.</param>
    /// <param name="instances">Coordinator instances; more than one share a PostgreSQL round log and Redis (skipped when neither can be had).</param>
    /// <param name="leaseSeconds">The instances' experiment lease.</param>
    public Federation(int shards, int instances = 1, int leaseSeconds = 3)
    {
        _scaleOut = instances == 1 ? [] :
        [
            "--Ferret:RoundLog", TestServices.NewPostgresDatabase(),
            "--Ferret:Redis", TestServices.Redis("ferret-e2e-" + Guid.NewGuid().ToString("N")[..8]),
            "--Ferret:LeaseSeconds", leaseSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture),
        ];
        Package = ModelExporter.Export(new ModelSource.FromPreset("tiny-gpt2", 1), Path.Combine(ArtifactsRoot, "tiny-gpt2"), overwrite: false);
        var examples = SyntheticTasks.Sample(["reverse", "upper", "copy"], 40 * shards, 3);
        Shards = new string[shards];
        for (int i = 0; i < shards; i++)
        {
            Shards[i] = Path.Combine(_dir, $"edge-{i + 1}.jsonl");
            SyntheticTasks.WriteJsonLines(Shards[i], examples.Skip(40 * i).Take(40));
        }
        // Ports of our own, fixed for the federation's life, so a restarted coordinator comes back at the same address.
        Ports = Enumerable.Range(0, instances).Select(_ =>
        {
            using var probe = new TcpListener(IPAddress.Loopback, 0);
            probe.Start();
            int port = ((IPEndPoint)probe.LocalEndpoint).Port;
            probe.Stop();
            return port;
        }).ToArray();
        Admins = Ports.Select(port =>
        {
            var admin = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}/") };
            admin.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", AdminKey);
            return admin;
        }).ToArray();
    }

    public string ArtifactsRoot => Path.Combine(_dir, "artifacts");

    public ArtifactPackage Package { get; }

    public string[] Shards { get; }

    public int Port => Ports[0];

    /// <summary>Each coordinator instance's port.</summary>
    public int[] Ports { get; }

    public Uri Url => UrlOf(0);

    public Uri UrlOf(int instance) => new($"http://127.0.0.1:{Ports[instance]}/");

    /// <summary>The admin API of the first instance.</summary>
    public HttpClient Admin => Admins[0];

    /// <summary>The admin API of each instance.</summary>
    public HttpClient[] Admins { get; }

    public string DatabasePath => Path.Combine(_dir, "coordinator.db");

    /// <summary>A path inside the federation's scratch folder.</summary>
    public string Scratch(string name) => Path.Combine(_dir, name);

    /// <summary>Starts coordinator instance <paramref name="instance"/> as a process and waits until it listens.</summary>
    public async Task<ChildProcess> StartCoordinatorAsync(string logName = "coordinator", int instance = 0)
    {
        var (process, _) = await CoordinatorProcess.StartAsync(logName, UrlOf(instance).ToString().TrimEnd('/'), AdminKey, DatabasePath, ArtifactsRoot,
            Path.Combine(_dir, logName + ".log"), ["--Ferret:EngineTickMilliseconds", "100", "--Ferret:InstanceId", $"coordinator-{instance}", .. _scaleOut]);
        _processes.Add(process);
        return process;
    }

    /// <summary>A Ferret experiment on tiny-gpt2 with two cheap local steps a round (optionally private).</summary>
    public async Task<string> CreateExperimentAsync(int rounds, int minClients, int deadlineSeconds, object? secureAggregation = null, object? differentialPrivacy = null)
    {
        var response = await Admin.PostAsJsonAsync("api/experiments", new Dictionary<string, object?>
        {
            ["name"] = "e2e",
            ["algorithm"] = "ferret",
            ["artifact"] = "tiny-gpt2",
            ["rounds"] = rounds,
            ["fraction"] = 1.0,
            ["experimentSeed"] = 3UL,
            ["candidateSeeds"] = 64,
            ["localSteps"] = 2,
            ["microBatches"] = 1,
            ["localLearningRate"] = 0.05,
            ["serverLearningRate"] = 3.0,
            ["minClients"] = minClients,
            ["roundDeadlineSeconds"] = deadlineSeconds,
            ["secureAggregation"] = secureAggregation,
            ["differentialPrivacy"] = differentialPrivacy,
        });
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, text);
        return JsonDocument.Parse(text).RootElement.GetProperty("id").GetString()!;
    }

    public async Task<string> EnrolmentTokenAsync()
    {
        var response = await Admin.PostAsJsonAsync("api/enrolments", new { label = "e2e" });
        response.EnsureSuccessStatusCode();
        return (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("token").GetString()!;
    }

    /// <summary>Enrols device <paramref name="index"/> now and keeps its token in its token file; returns the client id.</summary>
    public async Task<string> EnrolDeviceAsync(int index)
    {
        using var anonymous = new HttpClient { BaseAddress = Url };
        var response = await anonymous.PostAsJsonAsync("api/clients/enrol", new { enrolmentToken = await EnrolmentTokenAsync(), name = $"edge-{index}" });
        response.EnsureSuccessStatusCode();
        var body = await response.Content.ReadFromJsonAsync<JsonElement>();
        await File.WriteAllTextAsync(Path.Combine(_dir, $"edge-{index}.token"), body.GetProperty("token").GetString());
        return body.GetProperty("clientId").GetString()!;
    }

    /// <summary>
    /// Starts edge client <paramref name="index"/> (1-based) as a process. Its token lives in a file, so a
    /// restarted process with the same index is the same client.
    /// </summary>
    public async Task<ChildProcess> StartEdgeAsync(int index, string experimentId, Action<string>? onLine = null, string? logName = null,
        string? artifacts = null, string? data = null, int instance = 0, IEnumerable<string>? extra = null, IReadOnlyDictionary<string, string>? environment = null)
    {
        var tokenFile = Path.Combine(_dir, $"edge-{index}.token");
        var enrolment = File.Exists(tokenFile) ? null : await EnrolmentTokenAsync();
        string[] args = ["--coordinator", UrlOf(instance).ToString(), "--token-file", tokenFile, "--experiment", experimentId, "--artifacts", artifacts ?? Package.Directory,
            "--data", data ?? Shards[index - 1], "--max-length", "64", "--threads", "1", "--name", $"edge-{index}",
            "--device-check-cache", Path.Combine(_dir, "device-checks")];
        args = [.. args, .. extra ?? []];
        logName ??= $"edge-{index}";
        var variables = new Dictionary<string, string>(environment ?? new Dictionary<string, string>());
        if (enrolment is not null)
            variables["FERRET_ENROLMENT_TOKEN"] = enrolment;
        var process = new ChildProcess(logName, Deployables.EdgeClient, args, Path.Combine(_dir, logName + ".log"), onLine, variables);
        _processes.Add(process);
        return process;
    }

    public async Task<JsonElement> ExperimentAsync(string id, int instance = 0) => await Admins[instance].GetFromJsonAsync<JsonElement>($"api/experiments/{id}");

    /// <summary>Polls the experiment's status (as <paramref name="instance"/> reports it) until the condition holds.</summary>
    public async Task<JsonElement> WaitForAsync(string id, Func<JsonElement, bool> condition, double seconds, int instance = 0)
    {
        var until = DateTime.UtcNow.AddSeconds(seconds);
        JsonElement last = default;
        while (DateTime.UtcNow < until)
        {
            try
            {
                last = await ExperimentAsync(id, instance);
                if (condition(last))
                    return last;
            }
            catch (HttpRequestException)
            {
                // the coordinator is restarting
            }
            await Task.Delay(100);
        }
        throw new TimeoutException($"Experiment {id} did not reach the expected state in {seconds} s. Last status: {last}. Logs: {_dir}");
    }

    public static IEnumerable<JsonElement> Rounds(JsonElement experiment) => experiment.GetProperty("roundLog").EnumerateArray();

    public static bool RoundIs(JsonElement experiment, int round, string state) =>
        Rounds(experiment).Any(r => r.GetProperty("round").GetInt32() == round && r.GetProperty("state").GetString() == state);

    /// <summary>The final fingerprint an edge client printed before exiting.</summary>
    public static string FinalFingerprint(ChildProcess edge)
    {
        var line = File.ReadLines(edge.LogPath).LastOrDefault(l => l.Contains("final fingerprint", StringComparison.Ordinal))
            ?? throw new InvalidOperationException($"{edge.Name} printed no final fingerprint; see {edge.LogPath}.");
        return line[(line.LastIndexOf(' ') + 1)..];
    }

    public static async Task ExitsCleanlyAsync(ChildProcess process, double seconds)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(seconds));
        try
        {
            await process.WaitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            throw new TimeoutException($"{process.Name} still runs after {seconds} s; see {process.LogPath}.");
        }
        Assert.True(process.ExitCode == 0, $"{process.Name} exited with {process.ExitCode}: {File.ReadAllText(process.LogPath)}");
    }

    /// <summary>A hub connection (WebSockets) to instance <paramref name="instance"/>, with a bearer token or none.</summary>
    public HubConnection Hub(string? token, int instance = 0) => new HubConnectionBuilder()
        .WithUrl(new Uri(UrlOf(instance), RoundsProtocol.Path), o =>
        {
            if (token is not null)
                o.AccessTokenProvider = () => Task.FromResult<string?>(token);
        })
        .AddMessagePackProtocol()
        .Build();

    /// <summary>Enrols a new client (through <paramref name="instance"/>); its bearer token.</summary>
    public async Task<string> EnrolClientAsync(int instance = 0)
    {
        using var anonymous = new HttpClient { BaseAddress = UrlOf(instance) };
        var response = await anonymous.PostAsJsonAsync("api/clients/enrol", new { enrolmentToken = await EnrolmentTokenAsync(), name = "probe" });
        response.EnsureSuccessStatusCode();
        return (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("token").GetString()!;
    }

    /// <summary>The model fingerprint after replaying the round log (as <paramref name="instance"/> serves it) onto the package's initial parameters, independently of every client.</summary>
    public async Task<string> ReplayAsync(string id, int instance = 0)
    {
        var descriptor = Wire.Deserialize<ExperimentDescriptor>(await Admins[instance].GetByteArrayAsync($"api/experiments/{id}/descriptor"));
        var updates = Wire.Deserialize<GlobalUpdate[]>(await Admins[instance].GetByteArrayAsync($"api/experiments/{id}/updates?after=0"));
        var algorithm = FederatedAlgorithms.Create(descriptor, descriptor.Blocks(Package.Layout));
        var parameters = Package.LoadParameters();
        foreach (var u in updates)
            algorithm.Apply(u, parameters);
        return ModelFingerprint.Compute(parameters);
    }

    public void Dispose()
    {
        foreach (var p in _processes)
            p.Dispose();
        foreach (var admin in Admins)
            admin.Dispose();
        try
        {
            Directory.Delete(_dir, recursive: true);
        }
        catch (IOException)
        {
            // a process may hold a file for a moment longer; the temp cleaner gets it
        }
    }
}
