using System.Globalization;
using Ferret.Core.Algorithms;
using Ferret.Core.Packets;
using Ferret.Core.Parameters;
using Ferret.Onnx.Checkpoints;

namespace Ferret.Onnx.Artifacts;

/// <summary>Where a tuned model was written and what it is.</summary>
public sealed record SavedModel(string HuggingFaceDirectory, string? PackageDirectory, string Fingerprint);

/// <summary>
/// The product's output: tuned parameters of an artifact package written as a Hugging Face folder and,
/// optionally, as a new artifact package (the original's graphs and tokenizer with the new parameters).
/// The CLI (<c>ferret model</c>, <c>ferret train</c>), the edge client (<c>--save-model</c>), the demo and
/// the coordinator's model endpoint all write through here. Both folders are staged and renamed into
/// place only once both are complete.
/// </summary>
public static class TunedModel
{
    /// <summary>Where the artifact package goes when only the Hugging Face folder is named: <c>DIR-package</c> beside it.</summary>
    public static string DefaultPackageDirectory(string huggingFaceDirectory)
    {
        ArgumentException.ThrowIfNullOrEmpty(huggingFaceDirectory);
        return Path.GetFullPath(huggingFaceDirectory).TrimEnd(Path.DirectorySeparatorChar, Path.AltDirectorySeparatorChar) + "-package";
    }

    /// <summary>
    /// The global model of <paramref name="experiment"/> at <paramref name="round"/> (the last when null): the round
    /// log's updates replayed onto <paramref name="start"/>, its fingerprint checked against every fingerprint the
    /// participants reported for the same model (<paramref name="reportsAt"/>: the reports of a round).
    /// </summary>
    public static (ReplayedModel Model, int AgreeingReports) Replay(ArtifactPackage start, ExperimentDescriptor experiment, IEnumerable<GlobalUpdate> updates,
        int? round, Func<int, IEnumerable<string>> reportsAt)
    {
        ArgumentNullException.ThrowIfNull(start);
        ArgumentNullException.ThrowIfNull(experiment);
        ArgumentNullException.ThrowIfNull(reportsAt);
        if (start.Manifest.ParametersSha256 != experiment.ArtifactFingerprint)
        {
            throw new InvalidDataException(
                $"'{start.Directory}' holds the model {start.Manifest.ParametersSha256[..16]}, but experiment '{experiment.Id}' starts from {experiment.ArtifactFingerprint[..16]}.");
        }
        if (round is { } r && (r < 0 || r > experiment.Rounds))
            throw new ArgumentException($"Round {r} is outside experiment '{experiment.Id}' (rounds 0 to {experiment.Rounds}).");
        var model = ModelReplay.Replay(experiment, experiment.Blocks(start.Layout), start.LoadParameters(verify: true), updates, round);
        int agreeing = model.LastUpdateRound == 0 ? 0 : ModelReplay.CheckAgainstReports(model.Fingerprint, model.LastUpdateRound, reportsAt(model.LastUpdateRound));
        return (model, agreeing);
    }

    /// <summary>What the written model records about where it came from (safetensors metadata).</summary>
    public static Dictionary<string, string> Provenance(ExperimentDescriptor experiment, ReplayedModel model)
    {
        ArgumentNullException.ThrowIfNull(model);
        return Provenance(experiment, model.Round);
    }

    /// <inheritdoc cref="Provenance(ExperimentDescriptor, ReplayedModel)"/>
    public static Dictionary<string, string> Provenance(ExperimentDescriptor experiment, int round)
    {
        ArgumentNullException.ThrowIfNull(experiment);
        return new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["ferret_experiment"] = experiment.Id,
            ["ferret_algorithm"] = experiment.Algorithm,
            ["ferret_round"] = round.ToString(CultureInfo.InvariantCulture),
        };
    }

    public static SavedModel Save(ArtifactPackage start, float[] parameters, string huggingFaceDirectory, string? packageDirectory, bool overwrite,
        IReadOnlyDictionary<string, string>? provenance = null)
    {
        ArgumentNullException.ThrowIfNull(start);
        ArgumentNullException.ThrowIfNull(parameters);
        string fingerprint = ModelFingerprint.Compute(parameters);
        var metadata = new Dictionary<string, string>(provenance ?? new Dictionary<string, string>(), StringComparer.Ordinal)
        {
            ["ferret_fingerprint"] = fingerprint,
            ["ferret_base_fingerprint"] = start.Manifest.ParametersSha256,
        };
        if (packageDirectory is not null && Path.GetFullPath(packageDirectory) == Path.GetFullPath(huggingFaceDirectory))
            throw new ArgumentException($"The Hugging Face folder and the artifact package cannot both be '{Path.GetFullPath(packageDirectory)}'.");
        using var hf = HuggingFaceFolder.Stage(start, parameters, huggingFaceDirectory, overwrite, metadata);
        using var package = packageDirectory is null ? null : StagePackage(start, parameters, packageDirectory, overwrite);
        hf.Commit();
        package?.Commit(start.Manifest with { ParametersSha256 = fingerprint });
        return new SavedModel(hf.Target, packageDirectory is null ? null : Path.GetFullPath(packageDirectory), fingerprint);
    }

    /// <summary>A new artifact package: the original's graphs and tokenizer with <paramref name="parameters"/>.</summary>
    public static ArtifactPackage SavePackage(ArtifactPackage start, float[] parameters, string directory, bool overwrite)
    {
        ArgumentNullException.ThrowIfNull(start);
        ArgumentNullException.ThrowIfNull(parameters);
        string fingerprint = ModelFingerprint.Compute(parameters);
        using (var writer = StagePackage(start, parameters, directory, overwrite))
            writer.Commit(start.Manifest with { ParametersSha256 = fingerprint });
        return ArtifactPackage.Open(directory);
    }

    private static ArtifactPackageWriter StagePackage(ArtifactPackage start, float[] parameters, string directory, bool overwrite)
    {
        if (parameters.Length != start.Layout.TotalLength)
            throw new ArgumentException($"{parameters.Length:N0} parameters for a model of {start.Layout.TotalLength:N0}.", nameof(parameters));
        var writer = new ArtifactPackageWriter(directory, overwrite);
        try
        {
            var m = start.Manifest;
            foreach (var file in new[] { m.Train.File, m.Eval.File, m.Logits.File }.Concat(m.Tokenizer.Files))
            {
                writer.CopyFile(Path.Combine(start.Directory, file));
                var data = Path.Combine(start.Directory, file + ".data");
                if (File.Exists(data))
                    writer.CopyFile(data);
            }
            writer.WriteParameters(m.ParametersFile, start.Layout, parameters);
            return writer;
        }
        catch
        {
            writer.Dispose();
            throw;
        }
    }
}
