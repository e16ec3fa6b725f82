using Ferret.Onnx.Artifacts;
using Ferret.Onnx.Export;

namespace Ferret.Training.Tests;

/// <summary>Preset packages exported once per test run into a temporary folder.</summary>
public sealed class ArtifactFixture : IDisposable
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "ferret-artifacts-" + Guid.NewGuid().ToString("N"));
    private readonly Dictionary<string, ArtifactPackage> _packages = [];
    private readonly Lock _lock = new();

    public ArtifactPackage Get(string preset)
    {
        lock (_lock)
        {
            if (!_packages.TryGetValue(preset, out var p))
                _packages[preset] = p = ModelExporter.Export(new ModelSource.FromPreset(preset, 1), Path.Combine(_root, preset), overwrite: false);
            return p;
        }
    }

    public void Dispose()
    {
        if (Directory.Exists(_root))
            Directory.Delete(_root, recursive: true);
    }
}
