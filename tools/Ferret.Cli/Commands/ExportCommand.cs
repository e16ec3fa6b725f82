using System.CommandLine;
using System.Globalization;
using Ferret.Onnx.Export;
using Ferret.Onnx.Models;
using Spectre.Console;

namespace Ferret.Cli.Commands;

/// <summary><c>ferret export</c>: a preset or a Hugging Face folder to an artifact package.</summary>
internal static class ExportCommand
{
    public static Command Create()
    {
        var preset = new Option<string?>("--preset") { Description = $"A built-in model with seeded weights: {string.Join(", ", Presets.All.Select(p => p.Name))}." };
        var hf = new Option<DirectoryInfo?>("--hf") { Description = "A Hugging Face model folder (config.json + model.safetensors or a sharded index)." };
        var output = new Option<DirectoryInfo>("--out") { Description = "Folder to write the artifact package to.", Required = true };
        var seed = new Option<int>("--seed") { Description = "Seed of a preset's random weights.", DefaultValueFactory = _ => 1 };
        var tokenizer = Choices.Create("--tokenizer", "auto: the folder's tokenizer.model or tokenizer.json; byte: the built-in byte-level tokenizer.", "auto", "auto", "byte");
        var overwrite = new Option<bool>("--overwrite") { Description = "Replace an existing package." };
        var recompute = Choices.Create("--recompute",
            "Activation recompute for training: layers adds per-layer block graphs (a resident trainer then keeps only layer-boundary activations and recomputes each layer in its backward pass).",
            "none", "none", "layers");
        var precision = Choices.Create("--precision",
            "How the training graph computes: fp32, or bf16-mixed (linear layers in bf16 on a GPU's tensor cores, float32 elsewhere; such a package trains on CUDA only).",
            "fp32", "fp32", "bf16-mixed");
        var command = new Command("export", "Export a model to ONNX training artifacts (train.onnx, eval.onnx, logits.onnx, params.safetensors, manifest.json).")
        {
            preset, hf, output, seed, tokenizer, overwrite, recompute, precision,
        };
        // Asynchronous so Ctrl-C cancels the export between its steps (nothing half-written stays behind).
        CommandAction.SetAsync(command, (parse, ct) => Task.FromResult(Run(parse, ct)));
        return command;

        int Run(ParseResult parse, CancellationToken ct)
        {
            var p = parse.GetValue(preset);
            var h = parse.GetValue(hf);
            if ((p is null) == (h is null))
                throw new ArgumentException("Pass exactly one of --preset NAME or --hf MODEL_DIR.");
            if (p is not null && parse.GetResult(tokenizer) is { Implicit: false })
                throw new ArgumentException("--tokenizer applies to --hf exports; presets always use the byte tokenizer.");
            ModelSource source = p is not null
                ? new ModelSource.FromPreset(p, parse.GetValue(seed))
                : new ModelSource.FromHuggingFace(h!.FullName, parse.GetValue(tokenizer) == "byte");
            var options = new ExportOptions
            {
                Recompute = ExportOptions.ParseRecompute(parse.GetValue(recompute)),
                Precision = Onnx.Precision.MixedPrecision.Parse(parse.GetValue(precision)!),
            };
            var outDir = parse.GetValue(output)!.FullName;
            Onnx.Artifacts.ArtifactPackage? package = null;
            // Ctrl+C cancels: the staging folder is removed and nothing is left behind.
            AnsiConsole.Status().Start("exporting", ctx =>
            {
                package = ModelExporter.Export(source, outDir, parse.GetValue(overwrite), new Progress<string>(m => ctx.Status($"exporting: {Markup.Escape(m)}")), options, ct);
            });
            var m = package!.Manifest;
            var table = new Table().AddColumn("artifact").AddColumn("value");
            table.AddRow("folder", Markup.Escape(package.Directory));
            table.AddRow("model", $"{m.ModelFamily} {m.Preset ?? ""}");
            table.AddRow("parameters", m.ParameterCount.ToString("N0", CultureInfo.InvariantCulture));
            table.AddRow("blocks", m.Blocks.Count.ToString(CultureInfo.InvariantCulture));
            foreach (var g in new[] { m.Train, m.Eval, m.Logits }.Concat(m.Recompute?.Graphs ?? []))
                table.AddRow(g.File, $"{new FileInfo(Path.Combine(package.Directory, g.File)).Length / 1024.0:F0} KiB");
            table.AddRow(m.ParametersFile, $"{new FileInfo(package.ParametersPath).Length / 1048576.0:N0} MiB");
            if (m.Initializer is not null)
                table.AddRow("initializer", m.Initializer);
            table.AddRow("precision", m.Precision ?? "fp32");
            table.AddRow("fingerprint", m.ParametersSha256);
            AnsiConsole.Write(table);
            return 0;
        }
    }
}
