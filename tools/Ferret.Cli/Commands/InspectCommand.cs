using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Ferret.Core.Parameters;
using Ferret.Onnx.Artifacts;
using Spectre.Console;

namespace Ferret.Cli.Commands;

/// <summary><c>ferret inspect</c>: what an artifact package holds.</summary>
internal static class InspectCommand
{
    public static Command Create()
    {
        var dir = new Option<DirectoryInfo>("--artifacts") { Description = "An artifact package folder.", Required = true };
        var json = new Option<bool>("--json") { Description = "Print the summary as JSON." };
        var verify = new Option<bool>("--verify") { Description = "Recompute the parameters' fingerprint and compare it with the manifest." };
        var command = new Command("inspect", "Show an artifact package: model, parameters, blocks, tokenizer, graphs, fingerprint.") { dir, json, verify };
        CommandAction.SetAsync(command, async (parse, ct) =>
        {
            var package = ArtifactPackage.Open(parse.GetValue(dir)!.FullName);
            var m = package.Manifest;
            string? verified = null;
            if (parse.GetValue(verify))
            {
                // Chunk by chunk: a model of any size verifies in a fixed amount of memory.
                long total = package.Layout.TotalLength;
                if (parse.GetValue(json))
                {
                    await Task.Run(() => package.VerifyParameters(cancellationToken: ct), ct).ConfigureAwait(false);
                }
                else
                {
                    await AnsiConsole.Status().StartAsync("verifying", ctx => Task.Run(() => package.VerifyParameters(
                        new Progress<long>(n => ctx.Status($"verifying: {4.0 * n / (1 << 30):F2} of {4.0 * total / (1 << 30):F2} GiB")), ct), ct)).ConfigureAwait(false);
                }
                verified = "ok";
            }
            var sizes = m.Blocks.Select(b => b.Length).ToArray();
            var graphs = new[] { m.Train, m.Eval, m.Logits }.Concat(m.Recompute?.Graphs ?? []).Select(g => new
            {
                file = g.File,
                bytes = new FileInfo(Path.Combine(package.Directory, g.File)).Length,
                inputs = g.Inputs.Count,
                outputs = g.Outputs.Count,
            }).ToList();
            if (parse.GetValue(json))
            {
                parse.InvocationConfiguration.Output.WriteLine(CliJson.Serialize(new
                {
                    family = m.ModelFamily,
                    preset = m.Preset,
                    parameters = m.ParameterCount,
                    parameterBytes = m.ParameterCount * 4,
                    tensors = m.Parameters.Count,
                    blocks = m.Blocks.Count,
                    blockMin = sizes.Min(),
                    blockMax = sizes.Max(),
                    tokenizer = m.Tokenizer,
                    graphs,
                    recompute = m.Recompute?.Mode ?? "none",
                    precision = m.Precision ?? "fp32",
                    fingerprint = m.ParametersSha256,
                    initializer = m.Initializer,
                    verified,
                }));
                return 0;
            }
            var summary = new Table().AddColumn("field").AddColumn("value");
            summary.AddRow("folder", Markup.Escape(package.Directory));
            summary.AddRow("model", Markup.Escape($"{m.ModelFamily} {m.Preset}"));
            summary.AddRow("shape", $"hidden {package.Config.HiddenSize}, {package.Config.Layers} layers, {package.Config.Heads} heads ({package.Config.KeyValueHeads} kv), vocabulary {package.Config.VocabSize}");
            summary.AddRow("parameters", $"{m.ParameterCount.ToString("N0", CultureInfo.InvariantCulture)} ({m.ParameterCount * 4 / 1048576.0:F1} MiB fp32) in {m.Parameters.Count} tensors");
            summary.AddRow("blocks", $"{m.Blocks.Count}, {sizes.Min():N0} to {sizes.Max():N0} elements (threshold {ParameterBlocks.Threshold(m.Parameters.Select(p => p.Length).ToArray()):N0})");
            summary.AddRow("tokenizer", Markup.Escape($"{m.Tokenizer.Kind}, vocabulary {m.Tokenizer.VocabSize}, bos {m.Tokenizer.BosTokenId}, eos {m.Tokenizer.EosTokenId}, pad {m.Tokenizer.PadTokenId}"));
            summary.AddRow("precision", m.Precision ?? "fp32");
            summary.AddRow("recompute", m.Recompute is null ? "none" : $"{m.Recompute.Mode}: {m.Recompute.Layers.Count} layers share one forward and one backward graph");
            foreach (var g in graphs)
                summary.AddRow(g.file, $"{g.bytes / 1024.0:F0} KiB, {g.inputs} inputs, {g.outputs} outputs");
            if (m.Initializer is not null)
                summary.AddRow("initializer", m.Initializer);
            summary.AddRow("fingerprint", m.ParametersSha256 + (verified is null ? "" : " (verified)"));
            AnsiConsole.Write(summary);
            var tensors = new Table().AddColumn("parameter").AddColumn("shape").AddColumn(new TableColumn("offset").RightAligned()).AddColumn(new TableColumn("length").RightAligned());
            foreach (var p in m.Parameters)
                tensors.AddRow(Markup.Escape(p.Name), $"[[{string.Join(", ", p.Shape)}]]", p.Offset.ToString("N0", CultureInfo.InvariantCulture), p.Length.ToString("N0", CultureInfo.InvariantCulture));
            AnsiConsole.Write(tensors);
            return 0;
        });
        return command;
    }
}
