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

    public void WriteParameters(string fileName, ParameterLayout layout, ReadOnlyMemory<float> flat)
    {
        ArgumentNullException.ThrowIfNull(layout);
        SafeTensorsWriter.Write(PathOf(fileName), layout.Tensors.Select(t => (t.Name, t.Shape, flat.Slice((int)t.Offset, (int)t.Length))),
            new Dictionary<string, string> { ["format"] = "pt", ["producer"] = "Ferret.NET" });
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
