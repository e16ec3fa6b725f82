using Ferret.Onnx.Artifacts;
using Ferret.Onnx.Export;
using Spectre.Console;

namespace Ferret.Cli.Demo;

/// <summary>
/// The demo's base model: a small LLaMA this project pretrained itself (the recipe is in models/README.md),
/// committed as a Hugging Face folder (config.json, model.safetensors). The demo exports it once as an artifact
/// package and reuses that package while its parameters match the committed ones.
/// </summary>
internal static class DemoBase
{
    public const string Name = "ferret-demo-base";

    /// <summary>The committed Hugging Face folder: beside the CLI (a build or publish copies it there), else in the clone it runs from.</summary>
    public static string HuggingFaceFolder
    {
        get
        {
            var beside = Path.Combine(AppContext.BaseDirectory, "models", Name);
            if (File.Exists(Path.Combine(beside, "config.json")))
                return beside;
            var folder = Path.Combine(Deployables.RepositoryRoot, "models", Name);
            return File.Exists(Path.Combine(folder, "config.json"))
                ? folder
                : throw new FileNotFoundException($"The demo's base model is missing: '{folder}' holds no config.json. It is part of the repository (git checkout models/{Name}).");
        }
    }

    /// <summary>
    /// The base as the artifact package in <paramref name="dir"/>, exported from the committed folder when missing or
    /// holding other weights; a folder that is not a package is refused rather than overwritten.
    /// </summary>
    public static ArtifactPackage Ensure(string dir)
    {
        var source = HuggingFaceFolder;
        if (File.Exists(Path.Combine(dir, ArtifactManifest.FileName)))
        {
            var existing = ArtifactPackage.Open(dir);
            if (IsExportOf(existing, source))
                return existing;
            AnsiConsole.MarkupLine($"[yellow]{Markup.Escape(dir)} holds another model; exporting the committed base again[/]");
        }
        else if (Directory.Exists(dir) && Directory.EnumerateFileSystemEntries(dir).Any())
        {
            throw new ArgumentException($"--artifacts '{dir}' is a folder but not an artifact package (no {ArtifactManifest.FileName}); name a package folder, or a folder that does not exist yet.");
        }
        AnsiConsole.MarkupLine($"exporting the pretrained base [bold]{Name}[/] from {Markup.Escape(source)} to {Markup.Escape(dir)}");
        return ModelExporter.Export(new ModelSource.FromHuggingFace(source, ByteTokenizer: true), dir, overwrite: true);
    }

    /// <summary>Whether a package's parameters are the committed weights (same count, same bits).</summary>
    private static bool IsExportOf(ArtifactPackage package, string huggingFaceFolder)
    {
        using var checkpoint = Ferret.Onnx.Checkpoints.HfCheckpoint.Open(huggingFaceFolder);
        var parameters = package.LoadParameters();
        var buffer = new float[package.Layout.Tensors.Max(t => t.Length)];
        foreach (var t in package.Layout.Tensors)
        {
            if (!checkpoint.Contains(t.Name) || checkpoint.GetInfo(t.Name).Count != t.Length)
                return false;
            var span = buffer.AsSpan(0, (int)t.Length);
            checkpoint.ReadFloat32(t.Name, span);
            if (!span.SequenceEqual(parameters.AsSpan((int)t.Offset, (int)t.Length)))
                return false;
        }
        return true;
    }
}
