using Ferret.Core.Parameters;
using Ferret.Onnx.Checkpoints;
using Ferret.Onnx.Models;

namespace Ferret.Onnx.Weights;

/// <summary>
/// Parameters read from disk a slice at a time (a Hugging Face folder, a package's <c>params.safetensors</c>), after
/// every name and shape has been checked against the layout, so a bad file fails before anything is written.
/// </summary>
public sealed class StoredWeights : IParameterSource
{
    /// <summary>Buffers some checkpoints carry that are not parameters.</summary>
    private static bool IsBuffer(string name) =>
        name.EndsWith(".attn.bias", StringComparison.Ordinal) || name.EndsWith(".attn.masked_bias", StringComparison.Ordinal)
        || name.EndsWith("rotary_emb.inv_freq", StringComparison.Ordinal);

    private readonly ITensorReader _reader;
    private readonly IReadOnlyList<string> _stored;
    private readonly IDisposable? _owned;

    private StoredWeights(ParameterLayout layout, ITensorReader reader, IReadOnlyList<string> stored, IDisposable? owned)
    {
        Layout = layout;
        _reader = reader;
        _stored = stored;
        _owned = owned;
    }

    public ParameterLayout Layout { get; }

    public void Read(int tensor, long start, Memory<float> destination) => Read(tensor, start, destination.Span);

    /// <summary>Elements <c>start .. start + destination.Length</c> of tensor <paramref name="tensor"/>, in any order.</summary>
    public void Read(int tensor, long start, Span<float> destination) => _reader.ReadFloat32(_stored[tensor], start, destination);

    public void Dispose() => _owned?.Dispose();

    /// <summary>
    /// The weights of a Hugging Face folder for <paramref name="layout"/>: every tensor the architecture needs, with
    /// its shape, and nothing it does not use (buffers and a tied head aside). The checkpoint stays the caller's.
    /// </summary>
    public static StoredWeights FromCheckpoint(HfCheckpoint checkpoint, ParameterLayout layout, ModelConfig config)
    {
        ArgumentNullException.ThrowIfNull(checkpoint);
        ArgumentNullException.ThrowIfNull(layout);
        ArgumentNullException.ThrowIfNull(config);
        var stored = new List<string>(layout.Tensors.Count);
        var used = new HashSet<string>(StringComparer.Ordinal);
        foreach (var t in layout.Tensors)
        {
            // GPT-2 checkpoints often drop the "transformer." prefix.
            var name = checkpoint.Contains(t.Name) ? t.Name
                : t.Name.StartsWith("transformer.", StringComparison.Ordinal) && checkpoint.Contains(t.Name["transformer.".Length..]) ? t.Name["transformer.".Length..]
                : throw new InvalidDataException($"'{checkpoint.Directory}' has no tensor '{t.Name}', which a {config.Family} model with this config.json needs.");
            var info = checkpoint.GetInfo(name);
            if (!info.Shape.SequenceEqual(t.Shape))
                throw new InvalidDataException($"Tensor '{name}' in '{checkpoint.FileOf(name)}' has shape [{string.Join(", ", info.Shape)}]; config.json implies [{string.Join(", ", t.Shape)}].");
            if (info.DType is not ("F32" or "F16" or "BF16" or "F64"))
                throw new InvalidDataException($"Tensor '{name}' in '{checkpoint.FileOf(name)}' is {info.DType}; only F32, F16, BF16 and F64 weights can be read.");
            stored.Add(name);
            used.Add(name);
        }
        var tiedHead = config.TieWordEmbeddings ? new[] { "lm_head.weight" } : [];
        var surplus = checkpoint.TensorNames.Where(t => !used.Contains(t) && !IsBuffer(t) && !tiedHead.Contains(t)).Order(StringComparer.Ordinal).ToList();
        if (surplus.Count > 0)
            throw new InvalidDataException($"'{checkpoint.Directory}' has {surplus.Count} tensor(s) the architecture does not use, e.g. '{surplus[0]}' in '{checkpoint.FileOf(surplus[0])}'.");
        return new StoredWeights(layout, checkpoint, stored, owned: null);
    }

    /// <summary>A safetensors file holding exactly <paramref name="layout"/>'s tensors by name and shape (an artifact package's parameters).</summary>
    public static StoredWeights FromFile(string path, ParameterLayout layout, string describedBy)
    {
        ArgumentNullException.ThrowIfNull(layout);
        var reader = SafeTensorsReader.Open(path);
        try
        {
            foreach (var t in layout.Tensors)
            {
                if (!reader.Contains(t.Name))
                    throw new InvalidDataException($"'{path}' has no tensor '{t.Name}' listed in {describedBy}.");
                var info = reader.GetInfo(t.Name);
                if (!info.Shape.SequenceEqual(t.Shape))
                    throw new InvalidDataException($"'{path}': tensor '{t.Name}' has shape [{string.Join(", ", info.Shape)}]; {describedBy} says [{string.Join(", ", t.Shape)}].");
            }
            return new StoredWeights(layout, reader, layout.Tensors.Select(t => t.Name).ToList(), reader);
        }
        catch
        {
            reader.Dispose();
            throw;
        }
    }
}
