using Ferret.Core.Parameters;
using Ferret.Onnx.Artifacts;
using Ferret.Onnx.Autodiff;
using Ferret.Onnx.Checkpoints;
using Ferret.Onnx.Graphs;
using Ferret.Onnx.Models;

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
/// the tokenizer, and a manifest tying them together.
/// </summary>
public static class ModelExporter
{
    public const int Opset = 18;

    /// <summary>Buffers some checkpoints carry that are not parameters.</summary>
    private static bool IsBuffer(string name) =>
        name.EndsWith(".attn.bias", StringComparison.Ordinal) || name.EndsWith(".attn.masked_bias", StringComparison.Ordinal)
        || name.EndsWith("rotary_emb.inv_freq", StringComparison.Ordinal);

    public static ArtifactPackage Export(ModelSource source, string outputDirectory, bool overwrite, IProgress<string>? progress = null, ExportOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(source);
        options ??= new ExportOptions();
        using var writer = new ArtifactPackageWriter(outputDirectory, overwrite);
        ModelConfig config;
        float[] flat;
        DecoderBuilder builder;
        TokenizerDescription tokenizer;
        string? presetName = null;
        switch (source)
        {
            case ModelSource.FromPreset p:
                {
                    var preset = Presets.Get(p.Name);
                    presetName = preset.Name;
                    config = preset.Config;
                    builder = DecoderBuilder.For(config);
                    progress?.Report($"initialising {preset.Name} with seed {p.Seed}");
                    flat = Presets.Initialize(builder, p.Seed);
                    tokenizer = new TokenizerDescription("byte", config.VocabSize, Presets.ByteBos, Presets.ByteEos, Presets.BytePad, []);
                    break;
                }
            case ModelSource.FromHuggingFace h:
                {
                    using var checkpoint = HfCheckpoint.Open(h.Directory);
                    config = checkpoint.Config;
                    builder = DecoderBuilder.For(config);
                    progress?.Report($"reading weights from {checkpoint.Directory}");
                    flat = ReadWeights(checkpoint, builder);
                    if (h.ByteTokenizer)
                    {
                        if (config.VocabSize < Presets.ByteVocabulary)
                            throw new InvalidDataException($"A byte tokenizer needs a vocabulary of at least {Presets.ByteVocabulary}; '{h.Directory}' has {config.VocabSize}.");
                        tokenizer = new TokenizerDescription("byte", config.VocabSize, Presets.ByteBos, Presets.ByteEos, Presets.BytePad, []);
                    }
                    else
                    {
                        // A SentencePiece model (LLaMA-2, Mistral, Gemma) is the tokenizer itself; tokenizer.json alone means byte-level BPE.
                        bool sentencePiece = checkpoint.TokenizerFiles.Any(f => Path.GetFileName(f) == "tokenizer.model");
                        if (!sentencePiece && !checkpoint.TokenizerFiles.Any(f => Path.GetFileName(f) == "tokenizer.json"))
                            throw new FileNotFoundException($"'{h.Directory}' has neither tokenizer.model nor tokenizer.json; pass --tokenizer byte to use the byte-level tokenizer.");
                        foreach (var f in checkpoint.TokenizerFiles)
                            writer.CopyFile(f);
                        tokenizer = new TokenizerDescription(sentencePiece ? "sentencepiece" : "huggingface", config.VocabSize, config.BosTokenId, config.EosTokenId, config.PadTokenId,
                            checkpoint.TokenizerFiles.Select(Path.GetFileName).ToList()!);
                    }
                    break;
                }
            default:
                throw new ArgumentException($"Unknown model source {source.GetType().Name}.", nameof(source));
        }

        var parameters = builder.Parameters();
        var layout = new ParameterLayout(parameters.Select(p => (p.Name, (IReadOnlyList<long>)p.Shape)));
        var blocks = ParameterBlocks.Partition(layout);
        var names = parameters.Select(p => p.Name).ToList();

        progress?.Report("building the forward graph");
        var lossGraph = builder.Build(GraphKind.Loss);
        progress?.Report($"differentiating {lossGraph.Nodes.Count} nodes");
        var trainGraph = ReverseMode.AddGradients(lossGraph, DecoderBuilder.Loss, names, Opset);
        trainGraph.Name = "train";
        lossGraph.Name = "eval";
        var logitsGraph = builder.Build(GraphKind.Logits);
        logitsGraph.Name = "logits";

        progress?.Report("writing graphs");
        var train = Save(writer, "train.onnx", trainGraph);
        var eval = Save(writer, "eval.onnx", lossGraph);
        var logits = Save(writer, "logits.onnx", logitsGraph);
        var recompute = options.Recompute == RecomputeMode.Layers ? LayerRecompute.Write(writer, builder, Opset, progress) : null;
        progress?.Report("writing parameters");
        writer.WriteParameters("params.safetensors", layout, flat);

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
            ModelFingerprint.Compute(flat),
            layout.TotalLength,
            $"Ferret.NET {typeof(ModelExporter).Assembly.GetName().Version}",
            recompute);
        writer.Commit(manifest);
        progress?.Report("done");
        return ArtifactPackage.Open(outputDirectory);
    }

    internal static GraphDescription Save(ArtifactPackageWriter writer, string file, Graph graph)
    {
        new OnnxModel(graph, Opset).Save(writer.PathOf(file));
        return new GraphDescription(file, graph.Inputs.Select(i => i.Name).ToList(), graph.Outputs.Select(o => o.Name).ToList());
    }

    /// <summary>Reads every parameter the architecture needs, checking names and shapes against the config.</summary>
    private static float[] ReadWeights(HfCheckpoint checkpoint, DecoderBuilder builder)
    {
        var parameters = builder.Parameters();
        var flat = new float[parameters.Sum(p => p.Shape.Aggregate(1L, (a, d) => a * d))];
        var used = new HashSet<string>(StringComparer.Ordinal);
        long offset = 0;
        foreach (var (name, shape) in parameters)
        {
            long n = shape.Aggregate(1L, (a, d) => a * d);
            // GPT-2 checkpoints often drop the "transformer." prefix.
            var stored = checkpoint.Contains(name) ? name
                : name.StartsWith("transformer.", StringComparison.Ordinal) && checkpoint.Contains(name["transformer.".Length..]) ? name["transformer.".Length..]
                : throw new InvalidDataException($"'{checkpoint.Directory}' has no tensor '{name}', which a {builder.Config.Family} model with this config.json needs.");
            var info = checkpoint.GetInfo(stored);
            if (!info.Shape.SequenceEqual(shape))
                throw new InvalidDataException($"Tensor '{stored}' in '{checkpoint.FileOf(stored)}' has shape [{string.Join(", ", info.Shape)}]; config.json implies [{string.Join(", ", shape)}].");
            checkpoint.ReadFloat32(stored, flat.AsSpan((int)offset, (int)n));
            used.Add(stored);
            offset += n;
        }
        var tiedHead = builder.Config.TieWordEmbeddings ? new[] { "lm_head.weight" } : [];
        var surplus = checkpoint.TensorNames.Where(t => !used.Contains(t) && !IsBuffer(t) && !tiedHead.Contains(t)).Order(StringComparer.Ordinal).ToList();
        if (surplus.Count > 0)
            throw new InvalidDataException($"'{checkpoint.Directory}' has {surplus.Count} tensor(s) the architecture does not use, e.g. '{surplus[0]}' in '{checkpoint.FileOf(surplus[0])}'.");
        return flat;
    }
}
