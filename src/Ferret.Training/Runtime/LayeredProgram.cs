using Ferret.Core.Parameters;
using Ferret.Onnx.Artifacts;
using Ferret.Onnx.Models;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace Ferret.Training.Runtime;

/// <summary>
/// Activation recompute with a stock ONNX Runtime: the block graphs of a package exported with
/// <c>--recompute layers</c> run one session at a time. Forward goes through the prologue and every layer keeping
/// only the hidden rows at layer boundaries ([tokens, hidden] each), then the head computes the loss and its
/// gradient; backward runs the layers in reverse, each recomputing its own activations from its boundary, and
/// ends with the embedding tables. Every layer shares one forward and one backward session, bound to that
/// layer's tensors of <c>W</c> and <c>G</c>; every backward block adds its parameter gradients into <c>G</c> in
/// place. Alive at once: the boundaries, one layer's activations, and the head's logits while the head runs.
/// </summary>
internal sealed class LayeredProgram : IGradientProgram
{
    private readonly ParameterLayout _layout;
    private readonly RecomputeDescription _plan;
    private readonly BlockSession _prologue;
    private readonly BlockSession _layerForward;
    private readonly BlockSession _layerBackward;
    private readonly BlockSession _head;
    private readonly BlockSession _embeddingBackward;
    private readonly int[][] _layerTensors;
    private readonly Dictionary<string, int> _tensorIndex;
    private readonly string[] _sharedNames;
    private readonly float[] _loss = new float[1];
    private readonly OrtValue _lossValue;
    private readonly List<IDisposable> _owned = [];
    private DeviceVector? _weights;
    private DeviceVector? _gradient;
    private OrtMemoryInfo _memory = OrtMemoryInfo.DefaultInstance;
    private OrtAllocator _allocator = OrtAllocator.DefaultInstance;
    private Boundaries? _boundaries;

    public LayeredProgram(ArtifactPackage package, ResidentTraining owner)
    {
        _layout = package.Layout;
        _plan = package.Manifest.Recompute ?? throw new ArgumentException($"'{package.Directory}' was exported without recompute graphs.", nameof(package));
        _tensorIndex = _layout.Tensors.Select((t, i) => (t.Name, i)).ToDictionary(p => p.Name, p => p.i, StringComparer.Ordinal);
        _layerTensors = _plan.Layers.Select(names => names.Select(n => _tensorIndex[n]).ToArray()).ToArray();
        try
        {
            // The layer backward does most of the work: it is the session whose allocator and profile stand for the program.
            _layerBackward = Own(new BlockSession(owner, package.PathOf(_plan.LayerBackward), accumulating: true));
            _layerForward = Own(new BlockSession(owner, package.PathOf(_plan.LayerForward), accumulating: false));
            _prologue = Own(new BlockSession(owner, package.PathOf(_plan.Prologue), accumulating: false));
            _head = Own(new BlockSession(owner, package.PathOf(_plan.Head), accumulating: true));
            _embeddingBackward = Own(new BlockSession(owner, package.PathOf(_plan.EmbeddingBackward), accumulating: true));
            _sharedNames = _prologue.Session.OutputMetadata.Keys.Where(n => n != DecoderBuilder.Hidden).ToArray();
            CheckSignatures();
            _lossValue = Own(OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, new Memory<float>(_loss), []));
            _head.Binding.BindOutput(DecoderBuilder.Loss, _lossValue);
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    public InferenceSession MainSession => _layerBackward.Session;

    private void CheckSignatures()
    {
        for (int l = 0; l < _layerTensors.Length; l++)
        {
            for (int j = 0; j < _plan.LayerParameters.Count; j++)
            {
                var tensor = _layout.Tensors[_layerTensors[l][j]];
                _layerForward.Check(_plan.LayerParameters[j], tensor, gradient: false);
                _layerBackward.Check(_plan.LayerParameters[j], tensor, gradient: true);
            }
        }
        foreach (var block in new[] { _prologue, _head, _embeddingBackward })
        {
            foreach (var name in Parameters(block))
                block.Check(name, _layout.Tensors[_tensorIndex[name]], gradient: block != _prologue);
        }
        foreach (var name in _sharedNames)
        {
            if (!_layerForward.Takes(name) || !_layerBackward.Takes(name))
                throw new InvalidDataException($"The prologue returns '{name}', which the layer graphs do not take.");
        }
        // Every parameter gets its gradient from some backward block.
        var covered = new HashSet<int>(_layerTensors.SelectMany(t => t));
        covered.UnionWith(Parameters(_head).Concat(Parameters(_embeddingBackward)).Select(n => _tensorIndex[n]));
        if (covered.Count != _layout.Tensors.Count)
            throw new InvalidDataException($"The recompute graphs compute no gradient for '{_layout.Tensors[Enumerable.Range(0, _layout.Tensors.Count).First(i => !covered.Contains(i))].Name}'.");
    }

    /// <summary>The model parameters a non-layer block takes as inputs.</summary>
    private IEnumerable<string> Parameters(BlockSession block) => block.Session.InputMetadata.Keys.Where(_tensorIndex.ContainsKey);

    public void Bind(DeviceVector weights, DeviceVector gradient)
    {
        _weights = weights;
        _gradient = gradient;
        if (!weights.IsHost)
        {
            // Boundaries live where the parameters do: the device allocator of the parameters' memory.
            _memory = weights[0].GetTensorMemoryInfo();
            _allocator = Own(new OrtAllocator(MainSession, _memory));
        }
        foreach (var name in Parameters(_prologue))
            _prologue.BindParameter(name, _tensorIndex[name], weights, null);
        foreach (var block in new[] { _head, _embeddingBackward })
        {
            foreach (var name in Parameters(block))
                block.BindParameter(name, _tensorIndex[name], weights, gradient);
        }
    }

    public float ForwardBackward(TokenBatch batch, RunOptions runOptions)
    {
        if (_weights is null || _gradient is null)
            throw new InvalidOperationException("Bind the parameter and gradient buffers before the first run.");
        var b = BoundariesFor(batch);
        int layers = _layerTensors.Length;

        // Forward: the prologue gives boundary 0 and the shared per-batch tensors, each layer the next boundary.
        using (_prologue.BindTokens(batch))
        {
            _prologue.Binding.BindOutput(DecoderBuilder.Hidden, b.Hidden[0]);
            foreach (var name in _sharedNames)
                _prologue.Binding.BindOutputToDevice(name, _memory);
            _prologue.Run(runOptions);
            b.TakeShared(_prologue.Binding);
        }
        foreach (var (name, value) in b.Shared)
        {
            _layerForward.Binding.BindInput(name, value);
            _layerBackward.Binding.BindInput(name, value);
        }
        for (int l = 0; l < layers; l++)
        {
            BindLayer(_layerForward, l, null);
            _layerForward.Binding.BindInput(DecoderBuilder.Hidden, b.Hidden[l]);
            _layerForward.Binding.BindOutput(DecoderBuilder.HiddenOut, b.Hidden[l + 1]);
            _layerForward.Run(runOptions);
        }

        // Head: loss, the head's parameter gradients, and d loss / d boundary L.
        using (_head.BindTokens(batch))
        {
            _head.Binding.BindInput(DecoderBuilder.Hidden, b.Hidden[layers]);
            _head.Binding.BindOutput(GradientOf(DecoderBuilder.Hidden), b.Spare);
            _head.Run(runOptions);
        }

        // Backward: layer l reads boundary l and the gradient of boundary l + 1, and writes the gradient of
        // boundary l over boundary l + 1, which nothing reads any more.
        var upstream = b.Spare;
        for (int l = layers - 1; l >= 0; l--)
        {
            BindLayer(_layerBackward, l, _gradient);
            _layerBackward.Binding.BindInput(DecoderBuilder.Hidden, b.Hidden[l]);
            _layerBackward.Binding.BindInput(GradientOf(DecoderBuilder.HiddenOut), upstream);
            _layerBackward.Binding.BindOutput(GradientOf(DecoderBuilder.Hidden), b.Hidden[l + 1]);
            _layerBackward.Run(runOptions);
            upstream = b.Hidden[l + 1];
        }
        using (_embeddingBackward.BindTokens(batch))
        {
            _embeddingBackward.Binding.BindInput(GradientOf(DecoderBuilder.Hidden), upstream);
            _embeddingBackward.Run(runOptions);
        }
        return _loss[0];
    }

    private static string GradientOf(string value) => value + Onnx.Autodiff.ReverseMode.GradientSuffix;

    private void BindLayer(BlockSession block, int layer, DeviceVector? gradient)
    {
        var tensors = _layerTensors[layer];
        for (int j = 0; j < tensors.Length; j++)
            block.BindParameter(_plan.LayerParameters[j], tensors[j], _weights!, gradient);
    }

    /// <summary>The boundary buffers for this batch's shape, kept while consecutive batches share it.</summary>
    private Boundaries BoundariesFor(TokenBatch batch)
    {
        if (_boundaries is { } b && b.Batch == batch.Batch && b.Sequence == batch.Sequence)
            return b;
        _boundaries?.Dispose();
        _boundaries = null;
        _boundaries = new Boundaries(batch.Batch, batch.Sequence, _layerTensors.Length + 1, HiddenSize(), _allocator);
        return _boundaries;
    }

    /// <summary>The width of the hidden rows, from the layer graph's input.</summary>
    private long HiddenSize() => _layerForward.Session.InputMetadata[DecoderBuilder.Hidden].Dimensions[^1];

    public string EndProfiling()
    {
        var parts = new[] { _prologue, _layerForward, _head, _embeddingBackward }.Select(s => s.Session.EndProfiling()).Where(p => p.Length > 0).ToList();
        var main = MainSession.EndProfiling();
        return main.Length == 0 ? main : OrtProfile.Merge(main, parts);
    }

    private T Own<T>(T disposable)
        where T : IDisposable
    {
        _owned.Add(disposable);
        return disposable;
    }

    public void Dispose()
    {
        _boundaries?.Dispose();
        _boundaries = null;
        for (int i = _owned.Count - 1; i >= 0; i--)
            _owned[i].Dispose();
        _owned.Clear();
    }

    /// <summary>The hidden rows at each layer boundary, one spare for a gradient, and the prologue's shared tensors.</summary>
    private sealed class Boundaries : IDisposable
    {
        private readonly BlockSession.OrtValues _shared = [];

        public Boundaries(int batch, int sequence, int count, long hidden, OrtAllocator allocator)
        {
            Batch = batch;
            Sequence = sequence;
            long[] shape = [(long)batch * sequence, hidden];
            var values = new BlockSession.OrtValues();
            try
            {
                for (int i = 0; i <= count; i++)
                    values.Add(OrtValue.CreateAllocatedTensorValue(allocator, TensorElementType.Float, shape));
            }
            catch
            {
                values.Dispose();
                throw;
            }
            Hidden = values.Take(count).ToArray();
            Spare = values[count];
        }

        public int Batch { get; }

        public int Sequence { get; }

        public OrtValue[] Hidden { get; }

        public OrtValue Spare { get; }

        public IEnumerable<(string Name, OrtValue Value)> Shared => SharedNames.Zip(_shared);

        private List<string> SharedNames { get; } = [];

        /// <summary>Keeps the shared outputs the prologue's run allocated (and releases the last batch's).</summary>
        public void TakeShared(OrtIoBinding binding)
        {
            _shared.Dispose();
            SharedNames.Clear();
            var names = binding.GetOutputNames();
            var values = binding.GetOutputValues();
            for (int i = 0; i < names.Length; i++)
            {
                if (names[i] == DecoderBuilder.Hidden)
                {
                    values[i].Dispose();
                    continue;
                }
                SharedNames.Add(names[i]);
                _shared.Add(values[i]);
            }
        }

        public void Dispose()
        {
            _shared.Dispose();
            foreach (var v in Hidden)
                v.Dispose();
            Spare.Dispose();
        }
    }
}
