using Ferret.Core.Parameters;
using Ferret.Onnx.Artifacts;
using Ferret.Onnx.Autodiff;
using Ferret.Onnx.Checkpoints;
using Ferret.Onnx.Graphs;
using Ferret.Onnx.Models;
using Ferret.Onnx.Precision;
using Ferret.Onnx.Weights;

namespace Ferret.Onnx.Export;

/// <summary>Where an export's model comes from: a preset with seeded weights, or a Hugging Face folder.</summary>
public abstract record ModelSource
{
    public sealed record FromPreset(string Name, int Seed) : ModelSource;

    public sealed record FromHuggingFace(string Directory, bool ByteTokenizer) : ModelSource;
}

/// <summary>
/// Turns a model into an artifact package: the forward graph, its gradients by <see cref="ReverseMode"/>,
/// the evaluation and logits graphs, the parameters in Hugging Face names and layout, the block partition,
/// the tokenizer, and a manifest tying them together. Parameters stream from their source into
/// <c>params.safetensors</c> a chunk at a time and are fingerprinted on the way, so a model of any size exports
/// in a fixed amount of memory.
/// </summary>
public static class ModelExporter
{
    public const int Opset = 18;

    public static ArtifactPackage Export(ModelSource source, string outputDirectory, bool overwrite, IProgress<string>? progress = null, ExportOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(source);
        options ??= new ExportOptions();
        if (options.Precision == ComputePrecision.Bf16Mixed && options.Recompute == RecomputeMode.Layers)
            throw new ArgumentException("--precision bf16-mixed and --recompute layers cannot be combined yet (the layer block graphs are float32 only); export with one of them.");
        using var writer = new ArtifactPackageWriter(outputDirectory, overwrite);
        // Cancelled between steps: disposing the writer removes what was staged.
        var reporter = progress;
        progress = new Progress(m =>
        {
            cancellationToken.ThrowIfCancellationRequested();
            reporter?.Report(m);
        });
        ModelConfig config;
        TokenizerDescription? tokenizer = null;
        string? presetName = null;
        IReadOnlyDictionary<string, RecommendedSettings>? recommended = null;
        string? initializer = null;
        HfCheckpoint? checkpoint = null;
        Func<ParameterLayout, IParameterSource> weights;
        try
        {
            switch (source)
            {
                case ModelSource.FromPreset p:
                    {
                        var preset = Presets.Get(p.Name);
                        presetName = preset.Name;
                        // Settings measured on the small presets; nothing was measured on the paper-scale shapes, so they recommend none.
                        recommended = preset.Initializer == WeightInitializer.SystemRandom ? RecommendedSettings.SmallPresets : null;
                        config = preset.Config;
                        initializer = WeightRoles.ManifestName(preset.Initializer);
                        weights = layout => WeightRoles.Open(preset.Initializer, config, layout, p.Seed);
                        tokenizer = new TokenizerDescription("byte", config.VocabSize, Presets.ByteBos, Presets.ByteEos, Presets.BytePad, []);
                        break;
                    }
                case ModelSource.FromHuggingFace h:
                    {
                        checkpoint = HfCheckpoint.Open(h.Directory);
                        config = checkpoint.Config;
                        var opened = checkpoint;
                        weights = layout => StoredWeights.FromCheckpoint(opened, layout, config);
                        break;
                    }
                default:
                    throw new ArgumentException($"Unknown model source {source.GetType().Name}.", nameof(source));
            }

            var builder = DecoderBuilder.For(config);
            var parameters = builder.Parameters();
            var layout = new ParameterLayout(parameters.Select(p => (p.Name, (IReadOnlyList<long>)p.Shape)));
            var blocks = ParameterBlocks.Partition(layout);
            using var values = weights(layout);
            // Weights are checked before the tokenizer: a folder's tensors are the more telling defect.
            tokenizer ??= Tokenizer(checkpoint!, (ModelSource.FromHuggingFace)source, writer);

            var (train, eval, logits, recompute) = WriteGraphs(writer, builder, parameters.Select(p => p.Name).ToList(), options, progress, cancellationToken);
            string fingerprint = WriteParameters(writer, "params.safetensors", values, source is ModelSource.FromPreset fp ? $"{presetName} seed {fp.Seed}" : checkpoint!.Directory, progress, cancellationToken);

            var manifest = new ArtifactManifest(
                ArtifactManifest.CurrentFormatVersion,
                config.Family == ModelFamily.Llama ? "llama" : "gpt2",
                presetName,
                config.ToJson(),
                Opset,
                layout.Tensors.Select(t => new ManifestParameter(t.Name, [.. t.Shape], "float32", t.Offset, t.Length)).ToList(),
                blocks.Blocks.Select(b => new ManifestBlock(b.Index, b.Offset, b.Length)).ToList(),
                tokenizer,
                train, eval, logits,
                "params.safetensors",
                fingerprint,
                layout.TotalLength,
                $"Ferret.NET {typeof(ModelExporter).Assembly.GetName().Version}",
                recommended,
                initializer,
                recompute,
                Precision: options.Precision == ComputePrecision.Bf16Mixed ? MixedPrecision.Name(options.Precision) : null);
            progress.Report("hashing the package's files");
            writer.Commit(manifest);
        }
        finally
        {
            checkpoint?.Dispose();
        }
        // Committed: a Ctrl-C from here on no longer undoes the export, so "done" goes past the cancelling reporter.
        reporter?.Report("done");
        return ArtifactPackage.Open(outputDirectory);
    }

    private static TokenizerDescription Tokenizer(HfCheckpoint checkpoint, ModelSource.FromHuggingFace h, ArtifactPackageWriter writer)
    {
        var config = checkpoint.Config;
        if (h.ByteTokenizer)
        {
            if (config.VocabSize < Presets.ByteVocabulary)
                throw new InvalidDataException($"A byte tokenizer needs a vocabulary of at least {Presets.ByteVocabulary}; '{h.Directory}' has {config.VocabSize}.");
            return new TokenizerDescription("byte", config.VocabSize, Presets.ByteBos, Presets.ByteEos, Presets.BytePad, []);
        }
        // A SentencePiece model (LLaMA-2, Mistral, Gemma) is the tokenizer itself; tokenizer.json alone means byte-level BPE.
        bool sentencePiece = checkpoint.TokenizerFiles.Any(f => Path.GetFileName(f) == "tokenizer.model");
        if (!sentencePiece && !checkpoint.TokenizerFiles.Any(f => Path.GetFileName(f) == "tokenizer.json"))
            throw new FileNotFoundException($"'{h.Directory}' has neither tokenizer.model nor tokenizer.json; pass --tokenizer byte to use the byte-level tokenizer.");
        foreach (var f in checkpoint.TokenizerFiles)
            writer.CopyFile(f);
        return new TokenizerDescription(sentencePiece ? "sentencepiece" : "huggingface", config.VocabSize, config.BosTokenId, config.EosTokenId, config.PadTokenId,
            checkpoint.TokenizerFiles.Select(Path.GetFileName).ToList()!);
    }

    /// <summary>Builds, differentiates and saves the three graphs; they hold no weights (parameters are graph inputs).</summary>
    private static (GraphDescription Train, GraphDescription Eval, GraphDescription Logits, RecomputeDescription? Recompute) WriteGraphs(
        ArtifactPackageWriter writer, DecoderBuilder builder, IReadOnlyList<string> names, ExportOptions options, IProgress<string>? progress, CancellationToken cancellationToken)
    {
        progress?.Report("building the forward graph");
        var lossGraph = builder.Build(GraphKind.Loss);
        cancellationToken.ThrowIfCancellationRequested();
        progress?.Report($"differentiating {lossGraph.Nodes.Count} nodes");
        // Mixed precision is a rewrite of the forward graph before differentiation: the backward products follow it into bf16.
        var trainForward = options.Precision == ComputePrecision.Bf16Mixed ? MixedPrecision.Bf16Products(lossGraph) : lossGraph;
        var trainGraph = ReverseMode.AddGradients(trainForward, DecoderBuilder.Loss, names, Opset);
        trainGraph.Name = "train";
        lossGraph.Name = "eval";
        cancellationToken.ThrowIfCancellationRequested();
        var logitsGraph = builder.Build(GraphKind.Logits);
        logitsGraph.Name = "logits";
        progress?.Report("writing graphs");
        var train = Save(writer, "train.onnx", trainGraph);
        var eval = Save(writer, "eval.onnx", lossGraph);
        var logits = Save(writer, "logits.onnx", logitsGraph);
        var recompute = options.Recompute == RecomputeMode.Layers ? LayerRecompute.Write(writer, builder, Opset, progress) : null;
        cancellationToken.ThrowIfCancellationRequested();
        return (train, eval, logits, recompute);
    }

    /// <summary>Streams the parameters into a safetensors file (header first) and returns their fingerprint.</summary>
    private static string WriteParameters(ArtifactPackageWriter writer, string file, IParameterSource values, string from, IProgress<string>? progress, CancellationToken cancellationToken)
    {
        var layout = values.Layout;
        using var output = writer.CreateParameters(file, layout);
        long total = layout.TotalLength;
        var clock = System.Diagnostics.Stopwatch.StartNew();
        progress?.Report($"writing {total:N0} parameters from {from}");
        int shown = -1;
        // At most one report per percent: a 27 GB export writes 1,600 chunks.
        var done = new Reporter(n =>
        {
            int percent = (int)(100 * n / total);
            if (percent == shown)
                return;
            shown = percent;
            progress?.Report($"writing parameters: {4.0 * n / (1 << 30):F2} of {4.0 * total / (1 << 30):F2} GiB ({4.0 * n / (1 << 20) / Math.Max(1e-3, clock.Elapsed.TotalSeconds):F0} MiB/s)");
        });
        string fingerprint = ParameterPump.Run(values, chunk => output.Append(chunk.Span), progress is null ? null : done, cancellationToken: cancellationToken);
        output.Complete();
        return fingerprint;
    }

    /// <summary>Reports synchronously (on the exporting thread), so a cancellation check inside it stops the export where it is.</summary>
    private sealed class Progress(Action<string> report) : IProgress<string>
    {
        public void Report(string value) => report(value);
    }

    internal static GraphDescription Save(ArtifactPackageWriter writer, string file, Graph graph)
    {
        new OnnxModel(graph, Opset).Save(writer.PathOf(file));
        return new GraphDescription(file, graph.Inputs.Select(i => i.Name).ToList(), graph.Outputs.Select(o => o.Name).ToList());
    }

    /// <summary>Reports on the caller's thread, in order (<see cref="Progress{T}"/> posts to the thread pool).</summary>
    private sealed class Reporter(Action<long> report) : IProgress<long>
    {
        public void Report(long value) => report(value);
    }
}
