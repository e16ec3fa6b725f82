using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Ferret.Core.Parameters;
using Ferret.Core.Projection;
using Ferret.Core.Randomness;
using Spectre.Console;

namespace Ferret.Cli.Commands;

/// <summary>
/// <c>ferret bench projection</c>: elements per second of Ferret's projection (generate-and-dot) and
/// reconstruction (generate-and-subtract) over one block of N elements with K seeds; elements = N * K.
/// </summary>
internal static class BenchProjectionCommand
{
    public static Command Create()
    {
        var length = new Option<long>("--length") { Description = "Block length N.", DefaultValueFactory = _ => 10_000_000 };
        var seeds = new Option<int>("--seeds") { Description = "Seeds K projected per block.", DefaultValueFactory = _ => 16 };
        var threads = new Option<int>("--threads") { Description = "Worker threads (0: one per core).", DefaultValueFactory = _ => 0 };
        var repeat = new Option<int>("--repeat") { Description = "Timed repetitions; the best is reported.", DefaultValueFactory = _ => 5 };
        var path = Choices.Create("--path", "Kernel path.", "auto", "auto", "scalar", "vector256", "vector512");
        var dist = Choices.Create("--dist", "Basis distribution.", "uniform", "uniform", "rademacher");
        var json = new Option<bool>("--json") { Description = "Print one JSON object." };
        var command = new Command("projection", "Projection and reconstruction throughput (elements per second).")
        {
            length, seeds, threads, repeat, path, dist, json,
        };
        CommandAction.Set(command, parse =>
        {
            long n = parse.GetValue(length);
            int k = parse.GetValue(seeds);
            int reps = parse.GetValue(repeat);
            if (n < 64 || n > Array.MaxLength)
                throw new ArgumentException($"--length must lie in [64, {Array.MaxLength}] (got {n}).");
            if (k < 2)
                throw new ArgumentException($"--seeds must be at least 2 (got {k}).");
            if (reps < 1)
                throw new ArgumentException($"--repeat must be at least 1 (got {reps}).");
            var options = new KernelOptions
            {
                Threads = parse.GetValue(threads),
                Path = Enum.Parse<KernelPath>(parse.GetValue(path)!, ignoreCase: true),
            };
            var distribution = parse.GetValue(dist) == "rademacher" ? BasisDistribution.Rademacher : BasisDistribution.Uniform;
            var result = Measure(n, k, reps, options, distribution);
            var output = parse.InvocationConfiguration.Output;
            if (parse.GetValue(json))
            {
                output.WriteLine(CliJson.Serialize(new Dictionary<string, object>
                {
                    ["project_elements_per_s"] = Math.Round(result.Project),
                    ["apply_elements_per_s"] = Math.Round(result.Apply),
                    ["length"] = n,
                    ["seeds"] = k,
                    ["threads"] = options.Threads > 0 ? options.Threads : Environment.ProcessorCount,
                    ["path"] = (options.Path == KernelPath.Auto ? BasisKernels.Best : options.Path).ToString(),
                    ["distribution"] = distribution.ToString().ToLowerInvariant(),
                }));
                return 0;
            }
            var table = new Table().AddColumn("kernel").AddColumn(new TableColumn("elements/s").RightAligned()).AddColumn(new TableColumn("time per pass").RightAligned());
            table.AddRow("projection (generate + dot)", result.Project.ToString("N0", CultureInfo.InvariantCulture), $"{n * (double)k / result.Project * 1000:F1} ms");
            table.AddRow("reconstruction (generate + subtract)", result.Apply.ToString("N0", CultureInfo.InvariantCulture), $"{n * (double)k / result.Apply * 1000:F1} ms");
            table.Caption($"N = {n:N0}, K = {k}, {(options.Path == KernelPath.Auto ? BasisKernels.Best : options.Path)}, {(options.Threads > 0 ? options.Threads : Environment.ProcessorCount)} threads", null);
            AnsiConsole.Write(table);
            return 0;
        });
        return command;
    }

    internal static (double Project, double Apply) Measure(long n, int k, int repeat, KernelOptions options, BasisDistribution distribution)
    {
        var layout = new ParameterLayout([("block", new[] { n })]);
        var blocks = ParameterBlocks.FromRanges(layout, [(0, n)]);
        var delta = new float[n];
        var rng = new Random(1);
        for (int i = 0; i < delta.Length; i++)
            delta[i] = (float)(rng.NextDouble() - 0.5);
        var candidates = SharedRandomness.CandidateSeeds(1, k);
        // One block whose norm is the maximum gets all K seeds.
        var weights = new float[n];
        double best = double.MaxValue, bestApply = double.MaxValue;
        SeedCoordinates? gammas = null;
        for (int r = 0; r <= repeat; r++)
        {
            var timer = Stopwatch.StartNew();
            gammas = Projector.Project(delta, blocks, candidates, distribution, new Random(r), options);
            double t = timer.Elapsed.TotalSeconds;
            timer.Restart();
            Reconstruction.Apply(weights, blocks, gammas, candidates, distribution, options);
            double a = timer.Elapsed.TotalSeconds;
            if (r > 0)
            {
                best = Math.Min(best, t);
                bestApply = Math.Min(bestApply, a);
            }
        }
        double elements = n * (double)gammas!.Count;
        return (elements / best, elements / bestApply);
    }
}
