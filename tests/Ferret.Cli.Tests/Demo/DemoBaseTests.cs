using Ferret.Cli.Demo;
using Ferret.Onnx.Artifacts;
using Ferret.Onnx.Models;
using Ferret.Training;

namespace Ferret.Cli.Tests.Demo;

public sealed class DemoBaseTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("ferret-demo-base-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void The_committed_base_is_the_mini_llama_shape_and_is_exported_once_then_reused_until_its_weights_change()
    {
        var config = ModelConfig.LoadHuggingFace(Path.Combine(DemoBase.HuggingFaceFolder, "config.json"));
        var preset = Presets.Get("mini-llama").Config;
        Assert.True(config.HiddenSize == preset.HiddenSize && config.IntermediateSize == preset.IntermediateSize && config.Layers == preset.Layers
            && config.Heads == preset.Heads && config.KeyValueHeads == preset.KeyValueHeads && config.VocabSize == preset.VocabSize,
            "models/ferret-demo-base/config.json has the mini-llama preset's shape");

        var packageDir = Path.Combine(_dir, "base");
        var package = DemoBase.Ensure(packageDir);
        Assert.Equal(792_448, package.Layout.TotalLength);
        var exported = File.GetLastWriteTimeUtc(Path.Combine(package.Directory, ArtifactManifest.FileName));
        var again = DemoBase.Ensure(packageDir);
        Assert.True(exported == File.GetLastWriteTimeUtc(Path.Combine(again.Directory, ArtifactManifest.FileName)), "a package that holds the committed weights is reused, not exported again");

        // A package whose weights differ from the committed ones (tuned and saved over it) is exported again.
        var committed = again.LoadParameters();
        var tuned = (float[])committed.Clone();
        tuned[0] += 1f;
        var elsewhere = Path.Combine(_dir, "tuned");
        CentralizedTraining.Save(again, tuned, elsewhere, overwrite: false);
        Directory.Delete(again.Directory, recursive: true);
        Directory.Move(elsewhere, again.Directory);
        Assert.Equal(tuned[0], ArtifactPackage.Open(again.Directory).LoadParameters()[0]);
        var restored = DemoBase.Ensure(packageDir).LoadParameters();
        Assert.True(committed.AsSpan().SequenceEqual(restored), "a package holding other weights is replaced by the committed base");

        // A folder with files that is not a package is someone's data: refused, not overwritten.
        var notPackage = Directory.CreateDirectory(Path.Combine(_dir, "mine")).FullName;
        File.WriteAllText(Path.Combine(notPackage, "notes.txt"), "mine");
        var refused = Assert.Throws<ArgumentException>(() => DemoBase.Ensure(notPackage));
        Assert.Contains("not an artifact package", refused.Message, StringComparison.Ordinal);
        Assert.True(File.Exists(Path.Combine(notPackage, "notes.txt")), "the refused folder keeps its files");
    }
}
