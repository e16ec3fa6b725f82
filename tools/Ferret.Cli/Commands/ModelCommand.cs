using System.CommandLine;
using System.Text.Json;
using Ferret.Cli.Model;
using Ferret.EdgeClient;
using Ferret.Onnx.Artifacts;

namespace Ferret.Cli.Commands;

/// <summary>
/// <c>ferret model</c>: the federated model out of a round log (a coordinator's API or a copy of its SQLite
/// file), replayed onto the starting package and written as a Hugging Face folder plus a new artifact package.
/// </summary>
internal static class ModelCommand
{
    public static Command Create()
    {
        var coordinator = new Option<string?>("--coordinator") { Description = "The coordinator's base URL (with --token or FERRET_TOKEN: the admin key)." };
        var roundLog = new Option<FileInfo?>("--round-log") { Description = "A coordinator's SQLite round log (or a copy of it), read offline." };
        var experiment = new Option<string>("--experiment") { Description = "The experiment id.", Required = true };
        var round = new Option<int?>("--round") { Description = "The round whose model to write (default: the last closed round)." };
        var output = new Option<DirectoryInfo>("--out") { Description = "Folder for the Hugging Face model (config.json, model.safetensors, tokenizer files).", Required = true };
        var package = new Option<DirectoryInfo?>("--package") { Description = "Folder for the new artifact package (default: the --out folder's name + '-package', beside it)." };
        var artifacts = new Option<DirectoryInfo?>("--artifacts") { Description = "The artifact package the experiment started from (with --coordinator: downloaded by fingerprint when not given)." };
        var token = new Option<string?>("--token") { Description = "The coordinator's admin key (default: $FERRET_TOKEN)." };
        var overwrite = new Option<bool>("--overwrite") { Description = "Replace existing output folders." };
        var json = new Option<bool>("--json") { Description = "Print the result as one JSON object." };
        var command = new Command("model", "Rebuild an experiment's global model from its round log and write it as a Hugging Face folder and an artifact package.")
        {
            coordinator, roundLog, experiment, round, output, package, artifacts, token, overwrite, json,
        };
        CommandAction.SetAsync(command, async (parse, ct) =>
        {
            string? url = parse.GetValue(coordinator);
            var file = parse.GetValue(roundLog);
            if ((url is null) == (file is null))
                throw new ArgumentException("Pass exactly one of --coordinator URL or --round-log FILE.");
            string id = parse.GetValue(experiment)!;
            int? r = parse.GetValue(round);
            if (r is < 0)
                throw new ArgumentException($"--round {r} is negative.");
            string hf = parse.GetValue(output)!.FullName;
            string pkg = parse.GetValue(package)?.FullName ?? TunedModel.DefaultPackageDirectory(hf);
            bool replace = parse.GetValue(overwrite);
            foreach (var target in new[] { hf, pkg })
            {
                if (Directory.Exists(target) && !replace)
                    throw new IOException($"'{target}' already exists; pass --overwrite to replace it.");
            }
            string? start = parse.GetValue(artifacts)?.FullName;
            string? downloaded = null;
            try
            {
                LogSnapshot log;
                if (file is not null)
                {
                    if (start is null)
                        throw new ArgumentException("--round-log needs --artifacts DIR: the artifact package the experiment started from.");
                    log = LogSnapshot.FromFile(file.FullName, id, r);
                }
                else
                {
                    if (!Uri.TryCreate(url, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https"))
                        throw new ArgumentException($"--coordinator '{url}' is not an http(s) URL.");
                    string key = parse.GetValue(token) ?? Environment.GetEnvironmentVariable("FERRET_TOKEN")
                        ?? throw new ArgumentException("--coordinator needs the admin key: pass --token KEY or set FERRET_TOKEN.");
                    using var api = new CoordinatorApi(uri, key);
                    log = await LogSnapshot.FromCoordinatorAsync(api, uri, key, id, r, ct).ConfigureAwait(false);
                    if (start is null)
                    {
                        downloaded = Path.Combine(Path.GetTempPath(), $"ferret-model-start-{Guid.NewGuid():N}");
                        Console.Error.WriteLine($"downloading the starting package {log.Descriptor.ArtifactFingerprint[..16]} from {uri}");
                        await api.DownloadArtifactAsync(log.Descriptor.ArtifactFingerprint, downloaded, line => Console.Error.WriteLine(line), ct).ConfigureAwait(false);
                        start = downloaded;
                    }
                }
                if (r > log.LastClosedRound)
                    throw new ArgumentException($"--round {r}: experiment '{id}' has closed rounds 0 to {log.LastClosedRound} only.");
                var startPackage = ArtifactPackage.Open(start);
                var (model, agreeing) = TunedModel.Replay(startPackage, log.Descriptor, log.Updates, r ?? log.LastClosedRound, log.ReportsAt);
                var saved = TunedModel.Save(startPackage, model.Parameters, hf, pkg, replace, TunedModel.Provenance(log.Descriptor, model));
                var output = parse.InvocationConfiguration.Output;
                if (parse.GetValue(json))
                {
                    output.WriteLine(CliJson.Serialize(new Dictionary<string, object?>
                    {
                        ["experiment"] = id,
                        ["algorithm"] = log.Descriptor.Algorithm,
                        ["round"] = model.Round,
                        ["updates_applied"] = model.UpdatesApplied,
                        ["fingerprint"] = model.Fingerprint,
                        ["agreeing_reports"] = agreeing,
                        ["hugging_face_folder"] = saved.HuggingFaceDirectory,
                        ["package"] = saved.PackageDirectory,
                    }));
                    return 0;
                }
                output.WriteLine($"experiment {id} ({log.Descriptor.Algorithm}): round {model.Round} of {log.Descriptor.Rounds}, {model.UpdatesApplied} global updates replayed");
                output.WriteLine($"fingerprint {model.Fingerprint} " + (agreeing > 0
                    ? $"(agrees with {agreeing} participant report{(agreeing == 1 ? "" : "s")} of round {model.LastUpdateRound})"
                    : model.LastUpdateRound == 0 ? "(the starting model)" : $"(no participant reported round {model.LastUpdateRound}; not cross-checked)"));
                output.WriteLine($"model saved: {saved.HuggingFaceDirectory}");
                output.WriteLine($"package saved: {saved.PackageDirectory} (try: ferret generate --artifacts {saved.PackageDirectory} --prompt \"...\")");
                return 0;
            }
            finally
            {
                if (downloaded is not null && Directory.Exists(downloaded))
                    Directory.Delete(downloaded, recursive: true);
            }
        });
        return command;
    }
}
