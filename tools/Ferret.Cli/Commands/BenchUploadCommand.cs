using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Ferret.Cli.Reports;
using Ferret.Core.Algorithms;
using Ferret.Core.Packets;
using Ferret.Core.Parameters;
using Ferret.Onnx.Artifacts;
using Ferret.Onnx.Models;
using Ferret.Training.Data;
using Ferret.Training.Runtime;
using Ferret.Training.Simulation;
using Ferret.Training.Tokenization;
using Spectre.Console;

namespace Ferret.Cli.Commands;

/// <summary>
/// <c>ferret bench upload</c>: Ferret's packet against FedAvg's, measured on a real model and implied at the
/// paper's scales. One client trains one Ferret round on the package; its packet shows how many seeds each
/// block drew (as a fraction of K, by the block's role: q_proj, mlp.down_proj, the norms...). Those fractions
/// are then laid over the block partition of larger LLaMA shapes and the packet they imply is serialised
/// through the wire format, against FedAvg's 4 bytes per parameter.
/// </summary>
internal static class BenchUploadCommand
{
    /// <summary>The paper's model sizes as LLaMA shapes: (name, hidden, intermediate, layers, heads, vocabulary).</summary>
    internal static readonly (string Name, string Source, int Hidden, int Intermediate, int Layers, int Heads, int Vocabulary)[] Shapes =
    [
        ("llama-1.3b", "a LLaMA of DataJuicer-1.3B's size (assumed shape)", 2048, 5504, 24, 16, 32000),
        ("llama-3b", "OpenLLaMA-3B's config.json", 3200, 8640, 26, 32, 32000),
        ("llama2-7b", "LLaMA-2-7B's config.json", 4096, 11008, 32, 32, 32000),
    ];

    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    public static Command Create()
    {
        var artifacts = new Option<DirectoryInfo>("--artifacts") { Description = "Artifact package the measurement trains.", Required = true };
        var data = new Option<string>("--data") { Description = "Training data for the one measured client.", Required = true };
        var format = SimulateCommand.FormatOption();
        var localSteps = new Option<int>("--local-steps") { Description = "Local steps T.", DefaultValueFactory = _ => 10 };
        var microBatches = new Option<int>("--micro-batches") { Description = "Micro-batches per step.", DefaultValueFactory = _ => 4 };
        var localLr = new Option<double>("--local-lr") { Description = "Local learning rate.", DefaultValueFactory = _ => 1e-4 };
        var seeds = new Option<int>("--seeds") { Description = "Candidate seeds K.", DefaultValueFactory = _ => 200 };
        var threads = new Option<int>("--threads") { Description = "ONNX Runtime threads (0: one per core).", DefaultValueFactory = _ => 0 };
        var json = new Option<bool>("--json") { Description = "Print one JSON object." };
        var command = new Command("upload", "Ferret's upload against FedAvg's: measured on a package, implied at 1.3B, 3B and 7B from the measured seeds per block.")
        {
            artifacts, data, format, localSteps, microBatches, localLr, seeds, threads, json,
        };
        CommandAction.Set(command, parse =>
        {
            var package = ArtifactPackage.Open(parse.GetValue(artifacts)!.FullName);
            var (train, _) = SimulateCommand.LoadData(parse.GetValue(data)!, null, 1, parse.GetValue(format));
            var settings = FederatedAlgorithms.ReferenceSettings(FederatedAlgorithms.Ferret);
            settings.LocalSteps = parse.GetValue(localSteps);
            settings.MicroBatches = parse.GetValue(microBatches);
            settings.LocalLearningRate = parse.GetValue(localLr);
            settings.CandidateSeeds = parse.GetValue(seeds);
            settings.Validate();
            var measured = Measure(package, train, settings, new SessionSettings { IntraOpThreads = parse.GetValue(threads) });
            var rows = new List<UploadRow> { measured.Row };
            foreach (var shape in Shapes)
                rows.Add(Imply(shape.Name, Layout(shape), measured, settings.CandidateSeeds));

            if (parse.GetValue(json))
            {
                parse.InvocationConfiguration.Output.WriteLine(JsonSerializer.Serialize(new
                {
                    seeds = settings.CandidateSeeds,
                    seed_fraction_by_role = measured.FractionByRole,
                    models = rows.Select(r => new
                    {
                        model = r.Model,
                        measured = r.Measured,
                        parameters = r.Parameters,
                        blocks = r.Blocks,
                        mean_seeds_per_block = Math.Round(r.MeanSeedsPerBlock, 2),
                        ferret_bytes = r.FerretBytes,
                        fedavg_bytes = r.FedAvgBytes,
                        ratio = Math.Round(r.FedAvgBytes / (double)r.FerretBytes),
                    }),
                }, Indented));
                return 0;
            }
            var table = new Table().AddColumn("model").AddColumn(new TableColumn("parameters").RightAligned()).AddColumn(new TableColumn("blocks").RightAligned())
                .AddColumn(new TableColumn("seeds / block").RightAligned()).AddColumn(new TableColumn("Ferret packet").RightAligned())
                .AddColumn(new TableColumn("FedAvg packet").RightAligned()).AddColumn(new TableColumn("FedAvg / Ferret").RightAligned());
            foreach (var r in rows)
            {
                table.AddRow(r.Measured ? $"{r.Model} (measured)" : $"{r.Model} (implied)", r.Parameters.ToString("N0", CultureInfo.InvariantCulture), r.Blocks.ToString(CultureInfo.InvariantCulture),
                    r.MeanSeedsPerBlock.ToString("F1", CultureInfo.InvariantCulture), ComparisonReport.Bytes(r.FerretBytes), ComparisonReport.Bytes(r.FedAvgBytes),
                    (r.FedAvgBytes / (double)r.FerretBytes).ToString("N0", CultureInfo.InvariantCulture) + "x");
            }
            table.Caption($"one client, one round, T = {settings.LocalSteps} x {settings.MicroBatches}, eta = {settings.LocalLearningRate}, K = {settings.CandidateSeeds}; implied rows lay the measured seeds-per-block fractions (by role) over each shape's blocks", null);
            AnsiConsole.Write(table);
            return 0;
        });
        return command;
    }

    internal sealed record UploadRow(string Model, bool Measured, long Parameters, int Blocks, double MeanSeedsPerBlock, long FerretBytes, long FedAvgBytes);

    internal sealed record Measurement(UploadRow Row, IReadOnlyDictionary<string, double> FractionByRole, double MeanFraction, long FedAvgOverhead);

    /// <summary>One client's Ferret round on the package: its real packet, and FedAvg's packet for the same delta size.</summary>
    internal static Measurement Measure(ArtifactPackage package, IReadOnlyList<InstructionExample> train, AlgorithmSettings settings, SessionSettings session)
    {
        var descriptor = ExperimentDescriptor.Create("bench-upload", FederatedAlgorithms.Ferret, settings, 42, package.Blocks, package.Manifest.ParametersSha256, 1, 1);
        var ferret = FederatedAlgorithms.Create(descriptor, package.Blocks);
        var encoder = new ExampleEncoder(Tokenizers.FromPackage(package), 320);
        using var trainer = new OnnxTrainer(package.Layout, package.TrainGraphPath, package.EvalGraphPath, session);
        package.LoadParameters().CopyTo(trainer.Parameters, 0);
        var model = new OnnxLocalModel(trainer, encoder, train.Take(settings.LocalSteps * settings.MicroBatches * 4).Select(encoder.Encode).ToList(), settings.MicroBatches);
        model.StartRound(1);
        var packet = (FerretUpdate)ferret.Train(1, model, new Random(1));
        long ferretBytes = Wire.Serialize<ClientUpdate>(packet).LongLength;
        long fedAvgBytes = Wire.Serialize<ClientUpdate>(new FullDeltaUpdate
        {
            ExperimentId = packet.ExperimentId,
            Round = 1,
            SampleCount = packet.SampleCount,
            Stats = packet.Stats,
            Delta = new float[package.Layout.TotalLength],
        }).LongLength;

        var perBlock = new int[package.Blocks.Count];
        foreach (var b in packet.Blocks)
            perBlock[b]++;
        var byRole = Enumerable.Range(0, perBlock.Length).GroupBy(b => Role(package.Layout, package.Blocks[b]))
            .ToDictionary(g => g.Key, g => g.Average(b => perBlock[b] / (double)settings.CandidateSeeds), StringComparer.Ordinal);
        var row = new UploadRow(package.Manifest.Preset ?? Path.GetFileName(package.Directory), true, package.Layout.TotalLength, package.Blocks.Count,
            perBlock.Average(), ferretBytes, fedAvgBytes);
        return new Measurement(row, byRole, perBlock.Average() / settings.CandidateSeeds, fedAvgBytes - (4 * package.Layout.TotalLength));
    }

    /// <summary>The packet a larger model implies: the measured fraction of K for each block's role, serialised through the wire.</summary>
    internal static UploadRow Imply(string name, ParameterLayout layout, Measurement measured, int k)
    {
        var blocks = ParameterBlocks.Partition(layout);
        var indices = new List<int>();
        var blockIds = new List<int>();
        for (int b = 0; b < blocks.Count; b++)
        {
            double fraction = measured.FractionByRole.TryGetValue(Role(layout, blocks[b]), out var f) ? f : measured.MeanFraction;
            int n = Math.Clamp((int)Math.Round(fraction * k), 2, k);
            for (int i = 0; i < n; i++)
            {
                indices.Add(i);
                blockIds.Add(b);
            }
        }
        long ferretBytes = Wire.Serialize<ClientUpdate>(new FerretUpdate
        {
            ExperimentId = "bench-upload",
            Round = 1,
            SampleCount = 40,
            Stats = new TrainingStats { Loss = 1, ComputeSeconds = 1, ForwardPasses = 40, BackwardPasses = 40 },
            SeedIndices = [.. indices],
            Blocks = [.. blockIds],
            Gammas = new float[indices.Count],
        }).LongLength;
        return new UploadRow(name, false, layout.TotalLength, blocks.Count, indices.Count / (double)blocks.Count, ferretBytes,
            (4 * layout.TotalLength) + measured.FedAvgOverhead);
    }

    /// <summary>A shape's parameter layout, from its config alone (no weights).</summary>
    internal static ParameterLayout Layout((string Name, string Source, int Hidden, int Intermediate, int Layers, int Heads, int Vocabulary) shape)
    {
        var config = new ModelConfig
        {
            Family = ModelFamily.Llama,
            VocabSize = shape.Vocabulary,
            HiddenSize = shape.Hidden,
            IntermediateSize = shape.Intermediate,
            Layers = shape.Layers,
            Heads = shape.Heads,
            KeyValueHeads = shape.Heads,
            MaxPositions = 2048,
            BosTokenId = 1,
            EosTokenId = 2,
            PadTokenId = 0,
        };
        var parameters = DecoderBuilder.For(config).Parameters();
        return new ParameterLayout(parameters.Select(p => (p.Name, (IReadOnlyList<long>)p.Shape)));
    }

    /// <summary>A block's role: its first tensor's name without the layer number (model.layers.3.mlp.up_proj.weight: mlp.up_proj.weight).</summary>
    internal static string Role(ParameterLayout layout, ParameterBlock block)
    {
        var name = layout.Tensors[block.FirstTensor].Name;
        var parts = name.Split('.');
        return string.Join('.', parts.Where(p => !p.All(char.IsAsciiDigit) && p is not "model" and not "layers")) + (block.TensorCount > 1 ? "+" : "");
    }
}
