using Ferret.Core.Parameters;
using Ferret.Onnx.Checkpoints;

namespace Ferret.Onnx.Artifacts;

/// <summary>
/// Writes an artifact package into a staging folder beside the target and moves it into place only on
/// <see cref="Commit"/>; disposing without committing removes the staging folder, so a failed export
/// leaves nothing half-written.
/// </summary>
public sealed class ArtifactPackageWriter : IDisposable
{
    private readonly string _target;
    private readonly bool _overwrite;
    private bool _committed;

    public ArtifactPackageWriter(string directory, bool overwrite)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        _target = Path.GetFullPath(directory.TrimEnd(Path.DirectorySeparatorChar, Path.AltDirectorySeparatorChar));
        _overwrite = overwrite;
        if (System.IO.Directory.Exists(_target) && !overwrite)
            throw new IOException($"'{_target}' already exists; pass --overwrite to replace it.");
        var parent = Path.GetDirectoryName(_target) ?? throw new ArgumentException($"'{directory}' has no parent folder.", nameof(directory));
        System.IO.Directory.CreateDirectory(parent);
        StagingDirectory = Path.Combine(parent, $".{Path.GetFileName(_target)}.partial-{Guid.NewGuid():N}");
        System.IO.Directory.CreateDirectory(StagingDirectory);
    }

    public string StagingDirectory { get; }

    public string PathOf(string fileName) => Path.Combine(StagingDirectory, fileName);

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

    /// <summary>Writes the manifest last, then moves the package into place.</summary>
    public void Commit(ArtifactManifest manifest)
    {
        ArgumentNullException.ThrowIfNull(manifest);
        File.WriteAllText(PathOf(ArtifactManifest.FileName), manifest.ToJson());
        string? old = null;
        if (System.IO.Directory.Exists(_target))
        {
            if (!_overwrite)
                throw new IOException($"'{_target}' appeared while exporting; not replacing it.");
            old = _target + ".old-" + Guid.NewGuid().ToString("N")[..8];
            System.IO.Directory.Move(_target, old);
        }
        System.IO.Directory.Move(StagingDirectory, _target);
        _committed = true;
        if (old is not null)
            System.IO.Directory.Delete(old, recursive: true);
    }

    public void Dispose()
    {
        if (!_committed && System.IO.Directory.Exists(StagingDirectory))
            System.IO.Directory.Delete(StagingDirectory, recursive: true);
    }
}
