using System.CommandLine;
using Ferret.Cli;
using Ferret.EdgeClient;
using Ferret.Training.Data;
using Ferret.Training.Runtime;

var coordinator = new Option<string>("--coordinator") { Description = "Coordinator base URL, e.g. http://10.0.0.5:5000.", Required = true };
var token = new Option<string?>("--token") { Description = "Client token (visible to other users in ps: prefer $FERRET_TOKEN or --token-file)." };
var enrolment = new Option<string?>("--enrolment-token") { Description = "Single-use enrolment token from an admin (or $FERRET_ENROLMENT_TOKEN); redeemed once for a client token." };
var name = new Option<string>("--name") { Description = "Device name shown to the coordinator (with --enrolment-token).", DefaultValueFactory = _ => Environment.MachineName };
var tokenFile = new Option<FileInfo?>("--token-file") { Description = "Where the client token is kept: read when present, written (mode 0600) after enrolment." };
var experiment = new Option<string?>("--experiment") { Description = "Experiment id (default: the newest experiment that is not finished)." };
var artifacts = new Option<DirectoryInfo>("--artifacts") { Description = "Artifact package folder; downloaded from the coordinator by fingerprint when missing.", Required = true };
var data = new Option<FileInfo>("--data") { Description = "This device's training data (Alpaca, Dolly, GSM8K or Code Alpaca JSON/JSONL).", Required = true };
var format = Choices.Enum("--format", "Data format (auto: detected from the file).", DataFormat.Auto);
var malformed = Choices.Enum("--malformed", "skip (and report) or fail on malformed records.", MalformedRecords.Skip);
var maxLength = new Option<int>("--max-length") { Description = "Tokens per example at most.", DefaultValueFactory = _ => 320 };
var device = new Option<string>("--device") { Description = "cpu, cuda or cuda:N.", DefaultValueFactory = _ => "cpu" };
var threads = new Option<int>("--threads") { Description = "ONNX Runtime threads (0: one per core).", DefaultValueFactory = _ => 0 };
var keepRunning = new Option<bool>("--keep-running") { Description = "Stay connected after the experiment ends." };
var tf32 = new Option<bool>("--tf32") { Description = "TensorFloat-32 matrix products on the GPU.", DefaultValueFactory = _ => true };
var deviceCheck = new Option<bool>("--device-check") { Description = "Check the device against the cpu (ferret doctor) before joining; passes are cached.", DefaultValueFactory = _ => true };
var deviceCheckCache = new Option<DirectoryInfo?>("--device-check-cache") { Description = "Where passed device checks are remembered (default: ~/.cache/ferret/device-checks)." };
var wait = new Option<bool>("--wait") { Description = "Without --experiment: when every experiment is finished, wait for a new one (default: say so and exit)." };
var saveModel = new Option<DirectoryInfo?>("--save-model") { Description = "When the experiment ends, write the final model here as a Hugging Face folder (and an artifact package beside it, DIR-package)." };
var overwrite = new Option<bool>("--overwrite") { Description = "Replace an existing --save-model folder." };

var root = new RootCommand("ferret-edge: a Ferret.NET edge client. Joins an experiment, trains its assignments, sends compact packets, applies global updates.")
{
    coordinator, token, enrolment, name, tokenFile, experiment, artifacts, data, format, malformed, maxLength, device, threads, tf32, deviceCheck, deviceCheckCache, keepRunning, wait, saveModel, overwrite,
};
root.SetAction(async (parse, ct) =>
{
    try
    {
        KillSwitch.Arm(Environment.GetEnvironmentVariable(KillSwitch.Variable));
        var text = parse.GetValue(coordinator)!;
        if (!Uri.TryCreate(text, UriKind.Absolute, out var url) || url.Scheme is not ("http" or "https"))
            throw new ArgumentException($"--coordinator '{text}' is not an http(s) URL.");
        var options = new EdgeClientOptions
        {
            Coordinator = url,
            Token = await ResolveTokenAsync(url, parse.GetValue(token), parse.GetValue(enrolment), parse.GetValue(name)!, parse.GetValue(tokenFile), ct),
            ExperimentId = parse.GetValue(experiment),
            ArtifactsDirectory = parse.GetValue(artifacts)!.FullName,
            DataPath = parse.GetValue(data)!.FullName,
            DataFormat = parse.GetValue(format),
            Malformed = parse.GetValue(malformed),
            MaxLength = parse.GetValue(maxLength) is > 1 and var m ? m : throw new ArgumentException("--max-length must be at least 2."),
            Session = new SessionSettings { Device = ExecutionDevice.Parse(parse.GetValue(device)!), IntraOpThreads = parse.GetValue(threads), Tf32 = parse.GetValue(tf32) },
            ExitWhenDone = !parse.GetValue(keepRunning),
            DeviceCheck = parse.GetValue(deviceCheck),
            DeviceCheckCache = parse.GetValue(deviceCheckCache)?.FullName,
            WaitForExperiment = parse.GetValue(wait),
            SaveModelDirectory = parse.GetValue(saveModel)?.FullName,
            OverwriteModel = parse.GetValue(overwrite),
        };
        // Checked before hours of training, not after.
        foreach (var target in options.SaveModelDirectory is { } s ? new[] { s, Ferret.Onnx.Artifacts.TunedModel.DefaultPackageDirectory(s) } : [])
        {
            if (Directory.Exists(target) && !options.OverwriteModel)
                throw new IOException($"--save-model: '{target}' already exists; pass --overwrite to replace it.");
        }
        await using var participant = new EdgeParticipant(options, Console.Out);
        await participant.RunAsync(ct);
        return 0;
    }
    catch (Exception e) when (e is ArgumentException or InvalidDataException or IOException or UnauthorizedAccessException or NotSupportedException or FormatException
        or HttpRequestException { StatusCode: not null })
    {
        Console.Error.WriteLine($"ferret-edge: {e.Message}");
        return 2;
    }
    catch (DeviceCheckFailedException e)
    {
        Console.Error.WriteLine($"ferret-edge: {e.Message}");
        return 3;
    }
    catch (OperationCanceledException)
    {
        Console.Error.WriteLine("ferret-edge: stopped.");
        return 130;
    }
});
return await ParseErrors.InvokeAsync(root.Parse(args), "ferret-edge");

static async Task<string> ResolveTokenAsync(Uri coordinator, string? token, string? enrolment, string name, FileInfo? tokenFile, CancellationToken ct)
{
    token ??= Environment.GetEnvironmentVariable("FERRET_TOKEN");
    if (!string.IsNullOrWhiteSpace(token))
        return token.Trim();
    if (tokenFile is { Exists: true })
        return (await File.ReadAllTextAsync(tokenFile.FullName, ct)).Trim();
    enrolment ??= Environment.GetEnvironmentVariable("FERRET_ENROLMENT_TOKEN");
    if (string.IsNullOrWhiteSpace(enrolment))
        throw new ArgumentException("No client token: pass --token-file, set FERRET_TOKEN, or enrol with --enrolment-token / FERRET_ENROLMENT_TOKEN (and --token-file to keep it).");
    var (clientId, issued) = await Transient.RetryAsync("enrolling", c => CoordinatorApi.EnrolAsync(coordinator, enrolment, name, new { device = Environment.MachineName }, c),
        Console.WriteLine, ct);
    Console.WriteLine($"enrolled as {clientId}");
    if (tokenFile is not null)
        SecretFile.Write(tokenFile.FullName, issued);
    return issued;
}
