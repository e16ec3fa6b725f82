using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Ferret.Onnx.Artifacts;
using Ferret.Onnx.Export;
using Ferret.Training.Runtime;
using Ferret.Training.Verification;
using Spectre.Console;

namespace Ferret.Cli.Commands;

/// <summary>
/// <c>ferret doctor</c>: the device self-test to run before deploying a client (ferret-edge runs the same check at
/// start-up). Exit 0 when every path agrees with the CPU within the stated tolerances, 1 when one does not.
/// </summary>
internal static class DoctorCommand
{
    public static Command Create()
    {
        var device = new Option<string>("--device") { Description = "cpu, cuda or cuda:N.", DefaultValueFactory = _ => "cpu" };
        var artifacts = new Option<DirectoryInfo?>("--artifacts") { Description = "Artifact package to check with (default: tiny-llama, exported to a temporary folder)." };
        var tf32 = new Option<bool>("--tf32") { Description = "TensorFloat-32 matrix products on the GPU (true: faster, wider tolerances).", DefaultValueFactory = _ => true };
        var seq = new Option<int>("--seq") { Description = "Tokens per sequence of the check batch (2 sequences).", DefaultValueFactory = _ => 64 };
        var threads = new Option<int>("--threads") { Description = "ONNX Runtime CPU threads (0: one per core).", DefaultValueFactory = _ => 0 };
        var json = new Option<bool>("--json") { Description = "Print one JSON object instead of a table." };
        var command = new Command("doctor", "Check a device before deploying a client: the same batch on the CPU and on the device (host and resident buffers), one SGD step each.")
        {
            device, artifacts, tf32, seq, threads, json,
        };
        CommandAction.Set(command, parse =>
        {
            var options = new DeviceCheckOptions
            {
                Device = ExecutionDevice.Parse(parse.GetValue(device)!),
                Tf32 = parse.GetValue(tf32),
                Sequence = parse.GetValue(seq) is >= 4 and var s ? s : throw new ArgumentException($"--seq must be at least 4 (got {parse.GetValue(seq)})."),
                IntraOpThreads = parse.GetValue(threads) >= 0 ? parse.GetValue(threads) : throw new ArgumentException($"--threads must not be negative (got {parse.GetValue(threads)})."),
            };
            string? temporary = null;
            try
            {
                ArtifactPackage package;
                if (parse.GetValue(artifacts) is { } dir)
                {
                    package = ArtifactPackage.Open(dir.FullName);
                }
                else
                {
                    temporary = Path.Combine(Path.GetTempPath(), $"ferret-doctor-{Environment.ProcessId}");
                    package = ModelExporter.Export(new ModelSource.FromPreset("tiny-llama", 1), temporary, overwrite: true);
                }
                var report = parse.GetValue(json)
                    ? DeviceCheck.Run(package, options)
                    : AnsiConsole.Status().Start("checking " + options.Device, ctx => DeviceCheck.Run(package, options, new Progress<string>(m => ctx.Status(m))));
                if (parse.GetValue(json))
                    parse.InvocationConfiguration.Output.WriteLine(JsonSerializer.Serialize(report, Json));
                else
                    Print(report, parse.InvocationConfiguration.Output);
                return report.Passed ? 0 : 1;
            }
            finally
            {
                if (temporary is not null && Directory.Exists(temporary))
                    Directory.Delete(temporary, recursive: true);
            }
        });
        return command;
    }

    /// <summary>The CLI's JSON: snake_case keys.</summary>
    internal static JsonSerializerOptions Json { get; } = new() { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    private static void Print(DeviceCheckReport r, TextWriter output)
    {
        static string E(double? v) => v is double d ? d.ToString("0.0e+00", CultureInfo.InvariantCulture) : "-";
        // Relative errors against the CPU reference: loss, gradient, parameters after one SGD step.
        var table = new Table().Border(TableBorder.Simple).AddColumn("path").AddColumn("on").AddColumn(new TableColumn("loss").RightAligned())
            .AddColumn(new TableColumn("d loss").RightAligned()).AddColumn(new TableColumn("d grad").RightAligned())
            .AddColumn(new TableColumn("d step").RightAligned()).AddColumn(new TableColumn("tok/s").RightAligned())
            .AddColumn(new TableColumn("GPU peak").RightAligned()).AddColumn("verdict");
        foreach (var p in r.Paths)
        {
            table.AddRow(p.Path, p.Provider, p.Loss?.ToString("F4", CultureInfo.InvariantCulture) ?? "-", E(p.LossError), E(p.GradientError), E(p.ParameterError),
                p.TokensPerSecond?.ToString("N0", CultureInfo.InvariantCulture) ?? "-",
                p.PeakDeviceBytes is long b ? $"{b / (1024.0 * 1024.0):N0} MiB" : "-",
                p.Passed ? "ok" : "FAIL");
        }
        AnsiConsole.Write(table);
        foreach (var p in r.Paths.Where(p => p.Note is not null))
            output.WriteLine($"{p.Path} on {p.Provider}: {(p.Passed ? "" : "FAIL: ")}{p.Note}");
        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"tolerances (relative): loss {r.Tolerances.Loss:0e+00}, gradient {r.Tolerances.Gradient:0e+00}, step {r.Tolerances.Parameters:0e+00} ({r.Tolerances.Basis})"));
        output.WriteLine($"onnx runtime {r.OnnxRuntimeVersion}" + (r.Device.StartsWith("cuda", StringComparison.Ordinal)
            ? $", cuda runtime {r.CudaRuntimeVersion ?? "not found"}, cudnn {r.CudnnVersion ?? "not found"}, driver {r.DriverVersion ?? "not found"}, gpu {r.DeviceName ?? "unknown"}, tf32 {(r.Tf32 ? "on" : "off")}"
            : ""));
        output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"peak RSS {r.PeakRssBytes / (1024.0 * 1024.0):N0} MiB; model {r.ArtifactFingerprint[..16]}"));
        output.WriteLine(r.Passed ? $"{r.Device}: passed" : $"{r.Device}: FAILED");
    }
}
