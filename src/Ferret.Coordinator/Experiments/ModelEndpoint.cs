using System.Formats.Tar;
using System.Globalization;
using System.IO.Compression;
using Ferret.Coordinator.Artifacts;
using Ferret.Coordinator.Persistence;
using Ferret.Core.Algorithms;
using Ferret.Core.Packets;
using Ferret.Onnx.Artifacts;
using Ferret.Onnx.Checkpoints;
using Microsoft.AspNetCore.Http.HttpResults;

namespace Ferret.Coordinator.Experiments;

/// <summary>
/// <c>GET /api/experiments/{id}/model</c>: the experiment's global model at a round as a Hugging Face folder
/// (config.json, model.safetensors, tokenizer files), replayed from the round log onto the artifact package it
/// started from, its fingerprint checked against what the participants reported, streamed as a tar or zip.
/// </summary>
public static class ModelEndpoint
{
    public const string FingerprintHeader = "X-Ferret-Fingerprint";
    public const string RoundHeader = "X-Ferret-Round";

    internal static async Task<Results<FileStreamHttpResult, NotFound<string>, ValidationProblem, Conflict<string>>> Download(
        string id, int? round, string? format, IRoundLog log, ArtifactIndex artifacts, HttpResponse response, CancellationToken ct)
    {
        if (log.GetExperiment(id) is not { } experiment)
            return TypedResults.NotFound($"No experiment '{id}'.");
        string kind = (format ?? "tar").ToLowerInvariant();
        if (kind is not ("tar" or "zip"))
            return TypedResults.ValidationProblem(new Dictionary<string, string[]> { ["format"] = [$"'{format}' is not tar or zip."] });
        var descriptor = Wire.Deserialize<ExperimentDescriptor>(experiment.Descriptor);
        var progress = log.GetProgress(id);
        int closed = progress.Open is { } open ? open.Round - 1 : progress.LastRound;
        if (round is < 0 || round > closed)
            return TypedResults.ValidationProblem(new Dictionary<string, string[]> { ["round"] = [$"Round {round} is not closed; rounds 0 to {closed} are."] });
        if (artifacts.Find(descriptor.ArtifactFingerprint) is not { } artifact)
            return TypedResults.NotFound($"The artifact package {descriptor.ArtifactFingerprint} that experiment '{id}' starts from is not in the artifacts directory.");
        var package = ArtifactPackage.Open(artifacts.PathOf(artifact, ""));
        var updates = log.GetGlobalUpdates(id, 0).Select(u => Wire.Deserialize<GlobalUpdate>(u.GlobalUpdate)).ToList();
        ReplayedModel model;
        try
        {
            (model, _) = TunedModel.Replay(package, descriptor, updates, round ?? closed, r => log.GetFingerprints(id, r).Select(f => f.Fingerprint));
        }
        catch (InvalidDataException e)
        {
            return TypedResults.Conflict(e.Message);
        }
        string name = $"{id}-round-{model.Round}";
        var work = Directory.CreateTempSubdirectory("ferret-model-");
        try
        {
            var folder = Path.Combine(work.FullName, name);
            HuggingFaceFolder.Write(package, model.Parameters, folder, overwrite: false, TunedModel.Provenance(descriptor, model));
            // The archive is deleted when the response stream closes.
            var archive = new FileStream(Path.Combine(Path.GetTempPath(), $"ferret-{name}-{Guid.NewGuid():N}.{kind}"), FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None, 1 << 16,
                FileOptions.DeleteOnClose | FileOptions.Asynchronous);
            try
            {
                if (kind == "tar")
                {
                    await TarFile.CreateFromDirectoryAsync(folder, archive, includeBaseDirectory: true, ct).ConfigureAwait(false);
                }
                else
                {
                    await using var zip = new ZipArchive(archive, ZipArchiveMode.Create, leaveOpen: true);
                    foreach (var file in Directory.EnumerateFiles(folder).Order(StringComparer.Ordinal))
                        await zip.CreateEntryFromFileAsync(file, $"{name}/{Path.GetFileName(file)}", CompressionLevel.Fastest, ct).ConfigureAwait(false);
                }
                archive.Position = 0;
            }
            catch
            {
                await archive.DisposeAsync().ConfigureAwait(false);
                throw;
            }
            response.Headers[FingerprintHeader] = model.Fingerprint;
            response.Headers[RoundHeader] = model.Round.ToString(CultureInfo.InvariantCulture);
            return TypedResults.Stream(archive, kind == "tar" ? "application/x-tar" : "application/zip", $"{name}.{kind}");
        }
        finally
        {
            work.Delete(recursive: true);
        }
    }
}
