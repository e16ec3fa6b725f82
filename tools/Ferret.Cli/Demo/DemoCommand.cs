using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text.Json;
using Ferret.Cli.Reports;
using Ferret.Core.Algorithms;
using Ferret.Core.Packets;
using Ferret.Core.Parameters;
using Ferret.Core.Protocol;
using Ferret.Onnx.Artifacts;
using Ferret.Onnx.Export;
using Ferret.Training.Data;
using Ferret.Training.Evaluation;
using Ferret.Training.Runtime;
using Ferret.Training.Simulation;
using Ferret.Training.Tokenization;
using Microsoft.AspNetCore.SignalR.Client;
using Microsoft.Extensions.DependencyInjection;
using Spectre.Console;

namespace Ferret.Cli.Demo;

/// <summary>
/// <c>ferret demo</c>: the whole product on one machine. Exports the project's pretrained base model if missing,
/// writes instruction tasks the base was never shown (one shard per client) and held-out prompts on words no
/// client has, starts a coordinator on loopback with its SQLite round log in a temporary folder, starts edge
/// clients as separate processes on their shards, watches the rounds live as an observer, and prints the
/// held-out score, eval loss and a few held-out prompts answered before and after.
/// </summary>
internal static class DemoCommand
{

    public static Command Create()
    {
        var clients = new Option<int>("--clients") { Description = "Edge-client processes.", DefaultValueFactory = _ => 4 };
        var rounds = new Option<int>("--rounds") { Description = "Rounds.", DefaultValueFactory = _ => DemoSettings.Rounds };
        var artifacts = new Option<DirectoryInfo>("--artifacts") { Description = $"The artifact package of the pretrained base; exported there from models/{DemoBase.Name} when missing or holding other weights.", DefaultValueFactory = _ => new DirectoryInfo(Path.Combine("artifacts", DemoBase.Name)) };
        var json = new Option<FileInfo?>("--json") { Description = "Write the summary (held-out score and eval loss before and after, per-round packets, bytes and latency) to this JSON file (snake_case keys)." };
        var saveModel = new Option<DirectoryInfo?>("--save-model") { Description = "Where the tuned model goes as a Hugging Face folder, replaced each run (default: demo-model beside the package; its artifact package beside it, DIR-package)." };
        var keep = new Option<bool>("--keep") { Description = "Keep the temporary folder (round log, data, process logs, admin key)." };
        var algorithm = Choices.Create("--algorithm", "ferret, or a baseline: fedavg, fedkseed, fedzo.", FederatedAlgorithms.Ferret, [.. FederatedAlgorithms.Names]);
        var timeout = new Option<int>("--timeout") { Description = "Give up after this many seconds.", DefaultValueFactory = _ => 900 };
        var keepOpen = new Option<bool>("--keep-open") { Description = "After the rounds, keep the coordinator and its dashboard running until Ctrl+C." };
        var devices = new Option<string?>("--devices") { Description = "One device per client, e.g. cpu,cuda,cpu,cuda (default: all cpu); one entry applies to all." };
        var command = new Command("demo", "Run a coordinator and edge-client processes on loopback: Ferret (or a baseline) teaches a small pretrained model an instruction in a new language; held-out prompts scored before and after.")
        {
            clients, rounds, algorithm, artifacts, saveModel, devices, json, keep, timeout, keepOpen,
        };
        CommandAction.SetAsync(command, async (parse, ct) =>
        {
            try
            {
                var placement = DemoDevices.Parse(parse.GetValue(devices), parse.GetValue(clients), parse.GetResult(clients) is { Implicit: false });
                var package = parse.GetValue(artifacts)!.FullName;
                var model = parse.GetValue(saveModel)?.FullName ?? Path.Combine(Path.GetDirectoryName(package) ?? package, "demo-model");
                return await RunAsync(parse.GetValue(algorithm)!, placement, parse.GetValue(rounds), package, model, parse.GetValue(json)?.FullName,
                    parse.GetValue(keep), parse.GetValue(timeout), parse.GetValue(keepOpen), ct).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                Console.Error.WriteLine("ferret demo: interrupted.");
                return Interrupted;
            }
            catch (Interruption)
            {
                Console.Error.WriteLine("ferret demo: interrupted.");
                return Interrupted;
            }
            catch (OperationCanceledException)
            {
                Console.Error.WriteLine($"ferret demo: gave up after --timeout {parse.GetValue(timeout)} s.");
                return 1;
            }
            catch (Exception e) when (e is InvalidOperationException or HttpRequestException or TimeoutException)
            {
                Console.Error.WriteLine($"ferret demo: {e.Message}");
                return 1;
            }
        });
        return command;
    }

    /// <summary>Exit code of a run stopped by Ctrl-C (128 + SIGINT), as shells report it.</summary>
    private const int Interrupted = 130;

    /// <summary>A child process stopped by the same Ctrl-C: the demo was interrupted, not broken.</summary>
    private sealed class Interruption : Exception;

    private static async Task<int> RunAsync(string algorithmName, DemoDevices placement, int roundCount, string packageDirectory, string modelDirectory, string? jsonPath,
        bool keep, int timeoutSeconds, bool keepOpen, CancellationToken cancel)
    {
        int clientCount = placement.Devices.Count;
        if (clientCount is < 1 or > 32)
            throw new ArgumentException($"--clients {clientCount} is outside 1..32.");
        if (roundCount is < 1 or > 1000)
            throw new ArgumentException($"--rounds {roundCount} is outside 1..1000.");
        if (timeoutSeconds < 1)
            throw new ArgumentException($"--timeout {timeoutSeconds} must be at least 1 second.");
        if (Path.GetFullPath(modelDirectory) == Path.GetFullPath(packageDirectory))
            throw new ArgumentException($"--save-model '{modelDirectory}' is the starting package itself; name another folder.");
        string artifactsRoot = Path.GetDirectoryName(packageDirectory) ?? throw new ArgumentException($"--artifacts '{packageDirectory}' has no parent folder.");
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancel);
        deadline.CancelAfter(TimeSpan.FromSeconds(timeoutSeconds));
        var ct = deadline.Token;
        var total = Stopwatch.StartNew();
        var work = Directory.CreateTempSubdirectory("ferret-demo-").FullName;
        var children = new List<ChildProcess>();
        bool ok = false;
        try
        {
            // 1. The model and the data.
            var package = DemoBase.Ensure(packageDirectory);
            var data = DemoTasks.Write(work, clientCount);
            var shards = data.Shards;

            // 2. The coordinator, on a free loopback port, its round log in the temporary folder.
            string adminKey = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16));
            var (coordinator, url) = await CoordinatorProcess.StartAsync("coordinator", "http://127.0.0.1:0", adminKey, Path.Combine(work, "coordinator.db"),
                artifactsRoot, Path.Combine(work, "coordinator.log"), ["--Ferret:EngineTickMilliseconds", "200"], ct).ConfigureAwait(false);
            children.Add(coordinator);
            AnsiConsole.MarkupLine($"coordinator listening on [bold]{url}[/] (round log, data and process logs in a temporary folder{(keep ? $": {Markup.Escape(work)}" : ", deleted at exit; --keep keeps it")})");

            // 3. An experiment and one enrolment token per device.
            using var admin = new HttpClient { BaseAddress = url };
            admin.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", adminKey);
            var experimentId = await CreateExperimentAsync(admin, algorithmName, Path.GetFileName(package.Directory), roundCount, clientCount, ct).ConfigureAwait(false);
            var descriptor = Wire.Deserialize<ExperimentDescriptor>(await admin.GetByteArrayAsync(new Uri($"api/experiments/{experimentId}/descriptor", UriKind.Relative), ct).ConfigureAwait(false));
            AnsiConsole.MarkupLine($"experiment [bold]{experimentId}[/]: {roundCount} rounds, {clientCount} clients; {Markup.Escape(SettingsLine.Of(descriptor.Algorithm, descriptor.Settings))}");
            AnsiConsole.MarkupLine($"task: {string.Join(", ", DemoTasks.Skills)}, asked in German (the base only ever saw English instructions): {DemoTasks.TrainingExamples} examples over the clients; {data.HeldOut.Count} held-out prompts on words no client has");
            AnsiConsole.MarkupLine($"watch it: hub [bold]{new Uri(url, RoundsProtocol.Path)}[/] (Subscribe(\"{experimentId}\")), status [bold]{new Uri(url, $"api/experiments/{experimentId}")}[/] "
                + (keep ? $"(bearer: the admin key in {Markup.Escape(Path.Combine(work, "admin-key.txt"))})" : "(bearer: the admin key; --keep writes it to a file)"));
            if (keep)
                SecretFile.Write(Path.Combine(work, "admin-key.txt"), adminKey);
            await PrintDashboardAsync(admin, url, Math.Max(60, timeoutSeconds / 60), ct).ConfigureAwait(false);

            // 4. The model before, scored while nothing else runs.
            var tokenizer = Tokenizers.FromPackage(package);
            var encoder = new ExampleEncoder(tokenizer, 320);
            var initial = package.LoadParameters();
            var before = DemoEvaluation.Score(package, initial, data.HeldOut, encoder);
            AnsiConsole.MarkupLine(string.Create(CultureInfo.InvariantCulture, $"before: exact match [bold]{before.ExactMatch:F3}[/] on {data.HeldOut.Count} held-out prompts, eval loss {before.EvalLoss:F4}"));

            // 5. Watch live, then start the devices.
            var ended = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            var roundEvents = new List<RoundEvent>();
            var fingerprints = new Dictionary<int, List<string>>();
            await using var observer = new HubConnectionBuilder()
                .WithUrl(new Uri(url, RoundsProtocol.Path), o => o.AccessTokenProvider = () => Task.FromResult<string?>(adminKey))
                .AddMessagePackProtocol()
                .Build();
            observer.On<RoundEvent>(RoundsProtocol.RoundEvent, e =>
            {
                lock (roundEvents)
                    roundEvents.Add(e);
                Live(e.Kind switch
                {
                    RoundEvent.Opened => $"[blue]round {e.Round} opened[/]: {e.Assigned} clients assigned",
                    RoundEvent.Completed => string.Create(CultureInfo.InvariantCulture,
                        $"[green]round {e.Round} completed[/] in {e.Seconds:F1} s: {e.Aggregated}/{e.Assigned} packets, mean train loss {e.MeanTrainLoss:F4}, {e.BytesUp:N0} bytes up, update {e.BytesDown:N0} bytes"),
                    _ => $"[yellow]round {e.Round} {Markup.Escape(e.Kind)}[/]: {Markup.Escape(e.Detail ?? "")}",
                });
                if (e.ExperimentEnded)
                    ended.TrySetResult();
            });
            observer.On<ClientEvent>(RoundsProtocol.ClientEvent, e =>
            {
                placement.Observe(e);
                if (e.Kind == ClientEvent.Fingerprint)
                {
                    lock (fingerprints)
                    {
                        if (!fingerprints.TryGetValue(e.Round, out var set))
                            fingerprints[e.Round] = set = [];
                        set.Add(e.Detail ?? "");
                    }
                    return;
                }
                Live(e.Kind switch
                {
                    ClientEvent.Received => string.Create(CultureInfo.InvariantCulture, $"  {e.ClientId}: packet for round {e.Round}, {e.Bytes:N0} bytes, train loss {e.TrainLoss:F4}"),
                    ClientEvent.Joined => $"  {e.ClientId} joined",
                    _ => $"  [yellow]{e.ClientId} {Markup.Escape(e.Kind)}[/] {Markup.Escape(e.Detail ?? "")}",
                });
            });
            await observer.StartAsync(ct).ConfigureAwait(false);
            await observer.InvokeAsync(RoundsProtocol.Subscribe, experimentId, ct).ConfigureAwait(false);

            for (int i = 0; i < clientCount; i++)
            {
                var enrolment = await CoordinatorProcess.PostAsync(admin, "api/enrolments", new { label = $"demo edge {i + 1}" }, ct).ConfigureAwait(false);
                children.Add(new ChildProcess($"edge-{i + 1}", Deployables.EdgeClient,
                    ["--coordinator", url.ToString(), "--name", $"edge-{i + 1}",
                     "--token-file", Path.Combine(work, $"edge-{i + 1}.token"), "--experiment", experimentId, "--artifacts", package.Directory,
                     "--data", shards[i], "--threads", "1", "--device", placement.Devices[i].ToString(), "--device-check-cache", Path.Combine(work, "device-checks")],
                    Path.Combine(work, $"edge-{i + 1}.log"),
                    environment: new Dictionary<string, string> { ["FERRET_ENROLMENT_TOKEN"] = enrolment.GetProperty("token").GetString()! }));
            }
            AnsiConsole.MarkupLine($"started {clientCount} edge clients");

            while (!ended.Task.IsCompleted)
            {
                if (children.FirstOrDefault(c => c.HasExited && c.ExitCode != 0) is { } dead)
                {
                    if (dead.ExitCode == Interrupted || cancel.IsCancellationRequested)
                        throw new Interruption();
                    keep = true; // its log is the explanation: keep the folder it is in
                    throw new InvalidOperationException(dead.ExitCode == 3
                        ? $"{dead.Name} failed its device check and did not join: {File.ReadLines(dead.LogPath).LastOrDefault(l => l.Contains("device", StringComparison.Ordinal))}"
                        : $"{dead.Name} exited with code {dead.ExitCode}; see {dead.LogPath}.");
                }
                await Task.WhenAny(ended.Task, Task.Delay(500, ct)).ConfigureAwait(false);
            }

            // 6. The model after: the initial parameters with every global update in the log applied.
            var updates = Wire.Deserialize<GlobalUpdate[]>(await admin.GetByteArrayAsync(new Uri($"api/experiments/{experimentId}/updates?after=0", UriKind.Relative), ct).ConfigureAwait(false));
            Dictionary<int, List<string>> reported;
            lock (fingerprints)
                reported = fingerprints.ToDictionary(kv => kv.Key, kv => kv.Value.Select(f => f.StartsWith("MISMATCH ", StringComparison.Ordinal) ? f["MISMATCH ".Length..] : f).ToList());
            var (model, _) = TunedModel.Replay(package, descriptor, updates, null, r => reported.GetValueOrDefault(r) ?? []);
            var tuned = model.Parameters;
            string fingerprint = model.Fingerprint;
            // Each round's model as the demo replays it, for the per-client table.
            var replay = new Dictionary<int, string>();
            var replayed = (float[])initial.Clone();
            var rules = FederatedAlgorithms.Create(descriptor, descriptor.Blocks(package.Layout));
            foreach (var u in updates)
            {
                rules.Apply(u, replayed);
                replay[u.Round] = ModelFingerprint.Compute(replayed);
            }
            var after = DemoEvaluation.Score(package, tuned, data.HeldOut, encoder);
            var saved = TunedModel.Save(package, tuned, modelDirectory, TunedModel.DefaultPackageDirectory(modelDirectory), overwrite: true, TunedModel.Provenance(descriptor, model));
            foreach (var edge in children.Skip(1))
                await edge.WaitAsync(ct).WaitAsync(TimeSpan.FromSeconds(60), ct).ConfigureAwait(false);

            var summary = DemoReport.Summarise(algorithmName, clientCount, roundEvents, fingerprints, updates.Length, fingerprint, data.HeldOut, before, after, total.Elapsed);
            if (jsonPath is not null)
            {
                summary.Write(jsonPath);
                AnsiConsole.WriteLine($"wrote {jsonPath}");
            }
            AnsiConsole.WriteLine($"model saved: {saved.HuggingFaceDirectory}");
            AnsiConsole.WriteLine($"package saved: {saved.PackageDirectory} (ferret generate --artifacts {saved.PackageDirectory} --prompt \"...\")");
            placement.Render(await DemoDevices.NamesAsync(admin, ct).ConfigureAwait(false), replay);
            var failed = children.Skip(1).Where(c => c.ExitCode != 0).Select(c => c.Name).ToList();
            if (failed.Count > 0)
                throw new InvalidOperationException($"edge clients {string.Join(", ", failed)} did not exit cleanly; see their logs in {work}.");
            ok = true;
            if (keepOpen)
                await KeepOpenAsync(admin, url, cancel).ConfigureAwait(false);
            return 0;
        }
        finally
        {
            foreach (var c in children.AsEnumerable().Reverse())
                c.Dispose();
            if ((ok || cancel.IsCancellationRequested) && !keep)
                Directory.Delete(work, recursive: true);
            else
                AnsiConsole.MarkupLine($"kept [bold]{Markup.Escape(work)}[/] (round log, data, process logs)");
        }
    }

    /// <summary>
    /// Prints the dashboard's address as a one-time sign-in link: the browser that opens it gets its own admin
    /// session, and the admin key itself never appears on the screen.
    /// </summary>
    private static async Task PrintDashboardAsync(HttpClient admin, Uri url, int validMinutes, CancellationToken ct)
    {
        var link = await CoordinatorProcess.PostAsync(admin, "api/sign-in-links", new { role = "admin", label = "ferret demo", validMinutes }, ct).ConfigureAwait(false);
        // Plain Console: a link wrapped at the terminal's width cannot be clicked or copied.
        Console.Out.WriteLine($"dashboard: {new Uri(url, link.GetProperty("path").GetString())} (one-time sign-in link, valid {validMinutes} minutes)");
    }

    /// <summary>Keeps the coordinator and its dashboard up after the rounds, with a fresh link, until Ctrl+C.</summary>
    private static async Task KeepOpenAsync(HttpClient admin, Uri url, CancellationToken cancel)
    {
        await PrintDashboardAsync(admin, url, 24 * 60, cancel).ConfigureAwait(false);
        AnsiConsole.MarkupLine("the coordinator keeps running; [bold]Ctrl+C[/] stops it");
        try
        {
            await Task.Delay(Timeout.Infinite, cancel).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            AnsiConsole.WriteLine("stopped.");
        }
    }

    /// <summary>The demo's settings for the algorithm (<see cref="DemoSettings"/>), not the package's general recommendation.</summary>
    private static async Task<string> CreateExperimentAsync(HttpClient admin, string algorithm, string artifact, int rounds, int clients, CancellationToken ct)
    {
        var settings = DemoSettings.For(algorithm);
        var created = await CoordinatorProcess.PostAsync(admin, "api/experiments", new
        {
            name = "demo",
            algorithm,
            artifact,
            rounds,
            fraction = 1.0,
            experimentSeed = 42UL,
            localSteps = settings.LocalSteps,
            microBatches = settings.MicroBatches,
            localLearningRate = settings.LocalLearningRate,
            candidateSeeds = settings.CandidateSeeds,
            serverLearningRate = settings.ServerLearningRate,
            minClients = clients,
            roundDeadlineSeconds = 180,
        }, ct).ConfigureAwait(false);
        return created.GetProperty("id").GetString()!;
    }

    private static void Live(string markup) => AnsiConsole.MarkupLine($"[grey]{DateTime.Now:HH:mm:ss}[/] {markup}");
}
