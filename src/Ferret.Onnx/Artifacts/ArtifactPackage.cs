using Ferret.Core.Parameters;
using Ferret.Onnx.Checkpoints;
using Ferret.Onnx.Models;
using Ferret.Onnx.Weights;

namespace Ferret.Onnx.Artifacts;

/// <summary>
/// A read-only view of an exported artifact package: its manifest, checked against the files beside it,
/// the flat parameter layout, the block partition and the initial parameters.
/// </summary>
public sealed class ArtifactPackage
{
    private ArtifactPackage(string directory, ArtifactManifest manifest, ParameterLayout layout, ParameterBlocks blocks, ModelConfig config)
    {
        Directory = directory;
        Manifest = manifest;
        Layout = layout;
        Blocks = blocks;
        Config = config;
    }

    public string Directory { get; }

    public ArtifactManifest Manifest { get; }

    public ParameterLayout Layout { get; }

    public ParameterBlocks Blocks { get; }

    public ModelConfig Config { get; }

    public string TrainGraphPath => Path.Combine(Directory, Manifest.Train.File);

    public string EvalGraphPath => Path.Combine(Directory, Manifest.Eval.File);

    public string LogitsGraphPath => Path.Combine(Directory, Manifest.Logits.File);

    public string ParametersPath => Path.Combine(Directory, Manifest.ParametersFile);

    /// <summary>The path of one of the package's graphs.</summary>
    public string PathOf(GraphDescription graph) => Path.Combine(Directory, (graph ?? throw new ArgumentNullException(nameof(graph))).File);

    public static ArtifactPackage Open(string directory)
    {
        if (!System.IO.Directory.Exists(directory))
            throw new DirectoryNotFoundException($"Artifact package '{directory}' does not exist (export one with 'ferret export').");
        directory = Path.GetFullPath(directory);
        var manifestPath = Path.Combine(directory, ArtifactManifest.FileName);
        if (!File.Exists(manifestPath))
            throw new FileNotFoundException($"'{directory}' has no {ArtifactManifest.FileName}: not an artifact package.", manifestPath);
        var m = ArtifactManifest.Parse(File.ReadAllText(manifestPath), manifestPath);
        foreach (var g in new[] { m.Train, m.Eval, m.Logits })
        {
            if (!File.Exists(Path.Combine(directory, g.File)))
                throw new FileNotFoundException($"'{manifestPath}' names graph '{g.File}', which is missing.", Path.Combine(directory, g.File));
        }
        foreach (var g in m.Recompute?.Graphs ?? [])
        {
            if (!File.Exists(Path.Combine(directory, g.File)))
                throw new FileNotFoundException($"'{manifestPath}' names recompute graph '{g.File}', which is missing.", Path.Combine(directory, g.File));
        }
        ParameterLayout layout;
        try
        {
            layout = new ParameterLayout(m.Parameters.Select(p => (p.Name, (IReadOnlyList<long>)p.Shape)));
        }
        catch (ArgumentException e)
        {
            throw new InvalidDataException($"'{manifestPath}': parameter table is invalid: {e.Message}", e);
        }
        for (int i = 0; i < m.Parameters.Count; i++)
        {
            var p = m.Parameters[i];
            var t = layout.Tensors[i];
            if (p.Offset != t.Offset || p.Length != t.Length || p.DType != "float32")
                throw new InvalidDataException($"'{manifestPath}': parameter '{p.Name}' says offset {p.Offset}, length {p.Length}, {p.DType}; the table lays it at {t.Offset}, length {t.Length}, float32.");
        }
        if (m.ParameterCount != layout.TotalLength)
            throw new InvalidDataException($"'{manifestPath}': parameterCount {m.ParameterCount} but the tensors hold {layout.TotalLength}.");
        ParameterBlocks blocks;
        try
        {
            blocks = ParameterBlocks.FromRanges(layout, m.Blocks.Select(b => (b.Offset, b.Length)).ToArray());
        }
        catch (ArgumentException e)
        {
            throw new InvalidDataException($"'{manifestPath}': block partition is invalid: {e.Message}", e);
        }
        if (m.Recompute is { } r)
            CheckRecompute(r, layout, manifestPath);
        var config = ModelConfig.FromManifestJson(m.ModelConfig, manifestPath);
        if (!File.Exists(Path.Combine(directory, m.ParametersFile)))
            throw new FileNotFoundException($"'{manifestPath}' names parameters '{m.ParametersFile}', which is missing.");
        return new ArtifactPackage(directory, m, layout, blocks, config);
    }

    /// <summary>Lower-case hex SHA-256 of a file's bytes.</summary>
    public static string Sha256Of(string path)
    {
        using var stream = File.OpenRead(path);
        return Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(stream));
    }

    /// <summary>
    /// Checks every file the manifest hashes against its SHA-256; returns the names checked, or null when the
    /// manifest predates file hashes (then only <see cref="LoadParameters"/> can vouch for the parameters).
    /// </summary>
    public IReadOnlyList<string>? VerifyFiles()
    {
        if (Manifest.FileSha256 is not { } hashes)
            return null;
        foreach (var (name, expected) in hashes)
        {
            var path = Path.Combine(Directory, name);
            if (Path.GetFileName(name) != name || !File.Exists(path))
                throw new InvalidDataException($"'{Directory}': the manifest lists '{name}', which is not a file of the package.");
            var actual = Sha256Of(path);
            if (actual != expected)
                throw new InvalidDataException($"'{path}' has SHA-256 {actual}; the manifest says {expected}. The package was modified or damaged.");
        }
        return [.. hashes.Keys];
    }

    private static void CheckRecompute(RecomputeDescription r, ParameterLayout layout, string manifestPath)
    {
        if (r.Mode != RecomputeDescription.LayersMode)
            throw new InvalidDataException($"'{manifestPath}': recompute mode '{r.Mode}' is unknown; this Ferret.NET reads '{RecomputeDescription.LayersMode}'.");
        var known = layout.Tensors.Select(t => t.Name).ToHashSet(StringComparer.Ordinal);
        for (int l = 0; l < r.Layers.Count; l++)
        {
            if (r.Layers[l].Count != r.LayerParameters.Count)
                throw new InvalidDataException($"'{manifestPath}': recompute layer {l} lists {r.Layers[l].Count} parameters; the layer graph takes {r.LayerParameters.Count}.");
            var unknown = r.Layers[l].FirstOrDefault(n => !known.Contains(n));
            if (unknown is not null)
                throw new InvalidDataException($"'{manifestPath}': recompute layer {l} names parameter '{unknown}', which the parameter table does not have.");
        }
    }

    /// <summary>
    /// The initial parameters, flat, in manifest order; checked against the manifest's fingerprint. One array: for
    /// models of up to <see cref="Array.MaxLength"/> parameters (larger ones stream through <see cref="OpenParameters"/>).
    /// </summary>
    public float[] LoadParameters(bool verify = true)
    {
        if (Layout.TotalLength > Array.MaxLength)
            throw new NotSupportedException($"'{ParametersPath}' holds {Layout.TotalLength:N0} parameters, more than one array can ({Array.MaxLength:N0}); this use of the model needs it whole in memory.");
        var flat = new float[Layout.TotalLength];
        LoadParameters(flat, verify);
        return flat;
    }

    /// <summary>Reads the initial parameters straight into <paramref name="flat"/> (no intermediate copy), checked against the manifest's fingerprint.</summary>
    public void LoadParameters(Span<float> flat, bool verify = true)
    {
        if (flat.Length != Layout.TotalLength)
            throw new ArgumentException($"The destination holds {flat.Length} values; '{ParametersPath}' has {Layout.TotalLength}.", nameof(flat));
        using (var source = OpenParameters())
        {
            for (int i = 0; i < Layout.Tensors.Count; i++)
                source.Read(i, 0, flat.Slice((int)Layout.Tensors[i].Offset, (int)Layout.Tensors[i].Length));
        }
        if (verify)
            CheckFingerprint(ModelFingerprint.Compute(flat));
    }

    /// <summary>The initial parameters as a stream of slices in manifest order, names and shapes checked against the manifest.</summary>
    public StoredWeights OpenParameters() => StoredWeights.FromFile(ParametersPath, Layout, "the manifest");

    /// <summary>
    /// Recomputes the parameters' fingerprint a chunk at a time (any size of model, fixed memory) and checks it
    /// against the manifest; <paramref name="progress"/> hears the values hashed so far.
    /// </summary>
    public string VerifyParameters(IProgress<long>? progress = null, CancellationToken cancellationToken = default)
    {
        using var source = OpenParameters();
        var fp = ParameterPump.Run(source, consume: null, progress, cancellationToken: cancellationToken);
        CheckFingerprint(fp);
        return fp;
    }

    private void CheckFingerprint(string fp)
    {
        if (fp != Manifest.ParametersSha256)
            throw new InvalidDataException($"'{ParametersPath}' has fingerprint {fp}; the manifest says {Manifest.ParametersSha256}. The package was modified or damaged.");
    }
}
