using Ferret.Onnx.Artifacts;
using Ferret.Onnx.Autodiff;
using Ferret.Onnx.Graphs;
using Ferret.Onnx.Models;
using Ferret.Onnx.Precision;

namespace Ferret.Onnx.Export;

/// <summary>Which activations a training runtime recomputes instead of keeping for the backward pass.</summary>
public enum RecomputeMode
{
    /// <summary>Keep every activation (the whole training graph in one run).</summary>
    None,

    /// <summary>Keep only the hidden rows at decoder-layer boundaries; each layer's backward recomputes its forward.</summary>
    Layers,
}

/// <summary>Options of an export beyond the model itself.</summary>
public sealed record ExportOptions
{
    public RecomputeMode Recompute { get; init; }

    /// <summary>How the training graph computes (<see cref="MixedPrecision"/>); evaluation and logits graphs stay float32.</summary>
    public ComputePrecision Precision { get; init; }

    /// <summary>Parses a <c>--recompute</c> value: <c>none</c> or <c>layers</c>, any case.</summary>
    public static RecomputeMode ParseRecompute(string? text) => text?.Trim().ToLowerInvariant() switch
    {
        "none" => RecomputeMode.None,
        "layers" => RecomputeMode.Layers,
        _ => throw new ArgumentException($"Unknown --recompute value '{text}': expected none or layers."),
    };
}

/// <summary>
/// Writes the block graphs of activation recompute (<see cref="RecomputeDescription"/>): ONNX Runtime's own
/// recompute optimizer exists only in its discontinued training build, so a stock runtime recomputes at the
/// level of sessions, one block at a time. The backward graphs are vector-Jacobian products of the blocks'
/// forward graphs (<see cref="ReverseMode.AddVectorJacobianProduct"/>), so each recomputes its block's forward
/// internally and returns the gradient for the block before it.
/// </summary>
public static class LayerRecompute
{
    public const string Prologue = "prologue.onnx";
    public const string LayerForward = "layer_forward.onnx";
    public const string LayerBackward = "layer_backward.onnx";
    public const string Head = "head.onnx";
    public const string EmbeddingBackward = "embedding_backward.onnx";

    /// <summary>Builds the block graphs of <paramref name="builder"/>'s model; throws <see cref="NotSupportedException"/> for a model that cannot be cut into layers.</summary>
    public static (DecoderBlockGraphs Forward, Graph LayerBackward, Graph Head, Graph EmbeddingBackward) Build(DecoderBuilder builder, int opset)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var blocks = builder.BuildBlocks();
        var layerWrt = new List<string> { DecoderBuilder.Hidden };
        layerWrt.AddRange(blocks.LayerParameters);
        var layerBackward = ReverseMode.AddVectorJacobianProduct(blocks.Layer, [DecoderBuilder.HiddenOut], layerWrt, opset);
        layerBackward.Name = "layer_backward";
        var headWrt = blocks.Head.Inputs.Where(i => i.Type.ElementType == ElementType.Float).Select(i => i.Name).ToList();
        var head = ReverseMode.AddGradients(blocks.Head, DecoderBuilder.Loss, headWrt, opset);
        head.Name = "head";
        var tables = blocks.Prologue.Inputs.Where(i => i.Type.ElementType == ElementType.Float).Select(i => i.Name).ToList();
        var embeddingBackward = ReverseMode.AddVectorJacobianProduct(blocks.Prologue, [DecoderBuilder.Hidden], tables, opset);
        embeddingBackward.Name = "embedding_backward";
        return (blocks, layerBackward, head, embeddingBackward);
    }

    /// <summary>Builds and writes the block graphs into a package being exported; returns the manifest's description of them.</summary>
    public static RecomputeDescription Write(ArtifactPackageWriter writer, DecoderBuilder builder, int opset, IProgress<string>? progress = null)
    {
        ArgumentNullException.ThrowIfNull(writer);
        progress?.Report("building the layer blocks for recompute");
        var (blocks, layerBackward, head, embeddingBackward) = Build(builder, opset);
        progress?.Report("writing the layer blocks");
        return new RecomputeDescription(
            RecomputeDescription.LayersMode,
            ModelExporter.Save(writer, Prologue, blocks.Prologue),
            ModelExporter.Save(writer, LayerForward, blocks.Layer),
            ModelExporter.Save(writer, LayerBackward, layerBackward),
            ModelExporter.Save(writer, Head, head),
            ModelExporter.Save(writer, EmbeddingBackward, embeddingBackward),
            blocks.LayerParameters,
            blocks.LayerTensors);
    }
}
