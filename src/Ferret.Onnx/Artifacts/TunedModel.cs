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
