using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Ferret.Onnx.Artifacts;
using Ferret.Training.Verification;
using Spectre.Console;

namespace Ferret.Cli.Commands;

/// <summary><c>ferret gradcheck</c>: the exported training graph's gradients against finite differences.</summary>
internal static class GradcheckCommand
{
    public static Command Create()
    {
        var dir = new Option<DirectoryInfo>("--artifacts") { Description = "An artifact package folder.", Required = true };
        var directions = new Option<int>("--directions") { Description = "Random directions to check.", DefaultValueFactory = _ => 4 };
        var eps = new Option<double>("--eps") { Description = "Finite-difference step along a unit direction.", DefaultValueFactory = _ => 1e-3 };
        var seed = new Option<int>("--seed") { Description = "Seed of the batch and directions.", DefaultValueFactory = _ => 1 };
        var tolerance = new Option<double>("--tolerance") { Description = "Largest relative error accepted (exit 1 above it).", DefaultValueFactory = _ => 1e-3 };
        var json = new Option<bool>("--json") { Description = "Print the result as JSON." };
        var command = new Command("gradcheck", "Check train.onnx's gradients (and, for a package exported with --recompute layers, the layer blocks' gradients) against central finite differences of eval.onnx.")
        {
            dir, directions, eps, seed, tolerance, json,
        };
        CommandAction.Set(command, parse =>
        {
            var package = ArtifactPackage.Open(parse.GetValue(dir)!.FullName);
            var result = GradientCheck.Run(package, parse.GetValue(directions), parse.GetValue(eps), parse.GetValue(seed));
            double tol = parse.GetValue(tolerance);
            bool pass = result.MaxRelativeError <= tol;
            if (parse.GetValue(json))
            {
                parse.InvocationConfiguration.Output.WriteLine(CliJson.Serialize(new
                {
                    max_relative_error = result.MaxRelativeError,
                    loss = result.Loss,
                    epsilon = result.Epsilon,
                    tolerance = tol,
                    pass,
                    directions = result.Directions.Select(d => new { analytic = d.Analytic, numeric = d.Numeric, relative_error = d.RelativeError }),
                    recompute_directions = result.Recompute?.Select(d => new { analytic = d.Analytic, numeric = d.Numeric, relative_error = d.RelativeError }),
                }));
            }
            else
            {
                var table = new Table().AddColumn("direction").AddColumn(new TableColumn("<grad, d>").RightAligned())
                    .AddColumn(new TableColumn("finite difference").RightAligned()).AddColumn(new TableColumn("relative error").RightAligned());
                if (result.Recompute is not null)
                    table.AddColumn(new TableColumn("layered <grad, d>").RightAligned()).AddColumn(new TableColumn("layered error").RightAligned());
                foreach (var d in result.Directions)
                {
                    var row = new List<string> { d.Direction.ToString(CultureInfo.InvariantCulture), d.Analytic.ToString("G6", CultureInfo.InvariantCulture), d.Numeric.ToString("G6", CultureInfo.InvariantCulture), d.RelativeError.ToString("E2", CultureInfo.InvariantCulture) };
                    if (result.Recompute?[d.Direction] is { } r)
                        row.AddRange([r.Analytic.ToString("G6", CultureInfo.InvariantCulture), r.RelativeError.ToString("E2", CultureInfo.InvariantCulture)]);
                    table.AddRow(row.ToArray());
                }
                AnsiConsole.Write(table);
                parse.InvocationConfiguration.Output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"largest relative error {result.MaxRelativeError:E3} ({(pass ? "pass" : "FAIL")}, tolerance {tol:E1}), loss {result.Loss:F4}"));
            }
            return pass ? 0 : 1;
        });
        return command;
    }
}
