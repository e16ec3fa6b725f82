using Ferret.Core.Parameters;
using Ferret.Onnx.Checkpoints;

namespace Ferret.Onnx.Artifacts;

/// <summary>
/// Writes an artifact package into a staging folder beside the target and moves it into place only on
/// <see cref="Commit"/>; disposing without committing removes the staging folder, so a failed export
/// leaves nothing half-written (see <see cref="StagedDirectory"/>).
/// </summary>
public sealed class ArtifactPackageWriter : IDisposable
{
    private readonly StagedDirectory _staged;

    public ArtifactPackageWriter(string directory, bool overwrite) => _staged = new StagedDirectory(directory, overwrite);

    public string StagingDirectory => _staged.Staging;

    public string PathOf(string fileName) => _staged.PathOf(fileName);

    private static readonly Dictionary<string, string> ParametersMetadata = new() { ["format"] = "pt", ["producer"] = "Ferret.NET" };

    public void WriteParameters(string fileName, ParameterLayout layout, ReadOnlyMemory<float> flat)
    {
        ArgumentNullException.ThrowIfNull(layout);
        SafeTensorsWriter.Write(PathOf(fileName), layout.Tensors.Select(t => (t.Name, t.Shape, flat.Slice((int)t.Offset, (int)t.Length))), ParametersMetadata);
    }

    /// <summary>A parameters file to fill a slice at a time, in the layout's order (a model too large to hold at once).</summary>
    public SafeTensorsStreamWriter CreateParameters(string fileName, ParameterLayout layout)
    {
        ArgumentNullException.ThrowIfNull(layout);
        return new SafeTensorsStreamWriter(PathOf(fileName), layout.Tensors.Select(t => (t.Name, t.Shape)).ToList(), ParametersMetadata);
    }

    public void CopyFile(string sourcePath) => File.Copy(sourcePath, PathOf(Path.GetFileName(sourcePath)), overwrite: true);

    /// <summary>Writes the manifest last, with the SHA-256 of every other file, then moves the package into place.</summary>
    public void Commit(ArtifactManifest manifest)
    {
        ArgumentNullException.ThrowIfNull(manifest);
        var hashes = new SortedDictionary<string, string>(StringComparer.Ordinal);
        foreach (var file in System.IO.Directory.EnumerateFiles(StagingDirectory))
        {
            string name = Path.GetFileName(file);
            if (name != ArtifactManifest.FileName)
                hashes[name] = ArtifactPackage.Sha256Of(file);
        }
        File.WriteAllText(PathOf(ArtifactManifest.FileName), (manifest with { FileSha256 = hashes }).ToJson());
        _staged.Commit();
    }

    public void Dispose() => _staged.Dispose();
}
