using Ferret.Core.Parameters;
using Ferret.Training.Runtime;
using Microsoft.ML.OnnxRuntime;

namespace Ferret.Training.Evaluation;

/// <summary>
/// Greedy decoding through the package's logits graph: the whole prefix is re-run each step (no KV cache),
/// which is what small evaluation runs need. Parameters are bound once as views of a flat buffer.
/// </summary>
public sealed class GreedyGenerator : IDisposable
{
    private readonly InferenceSession _session;
    private readonly OrtIoBinding _binding;
    private readonly RunOptions _run = new();
    private readonly List<OrtValue> _views = [];
    private readonly int _vocab;

    public GreedyGenerator(ParameterLayout layout, string logitsGraphPath, float[] parameters, int vocabSize, SessionSettings settings)
    {
        ArgumentNullException.ThrowIfNull(layout);
        ArgumentNullException.ThrowIfNull(parameters);
        ArgumentNullException.ThrowIfNull(settings);
        if (parameters.Length != layout.TotalLength)
            throw new ArgumentException($"{parameters.Length} parameters for a layout of {layout.TotalLength}.", nameof(parameters));
        if (!File.Exists(logitsGraphPath))
            throw new FileNotFoundException($"Logits graph '{logitsGraphPath}' does not exist.", logitsGraphPath);
        Parameters = parameters;
        _vocab = vocabSize;
        using var options = settings.CreateOptions();
        _session = new InferenceSession(logitsGraphPath, options);
        _binding = _session.CreateIoBinding();
        foreach (var t in layout.Tensors)
        {
            var v = OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, new Memory<float>(parameters, (int)t.Offset, (int)t.Length), t.Shape.ToArray());
            _views.Add(v);
            _binding.BindInput(t.Name, v);
        }
    }

    /// <summary>The bound flat parameters; edit in place to evaluate another model state.</summary>
    public float[] Parameters { get; }

    /// <summary>Continues <paramref name="prompt"/> greedily until EOS or <paramref name="maxNewTokens"/>.</summary>
    public List<int> Generate(IReadOnlyList<int> prompt, int maxNewTokens, int eosId)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        var tokens = prompt.Select(t => (long)t).ToList();
        var generated = new List<int>();
        for (int step = 0; step < maxNewTokens; step++)
        {
            var ids = tokens.ToArray();
            var mask = new long[ids.Length];
            Array.Fill(mask, 1L);
            using var idValue = OrtValue.CreateTensorValueFromMemory(ids, [1, ids.Length]);
            using var maskValue = OrtValue.CreateTensorValueFromMemory(mask, [1, ids.Length]);
            _binding.BindInput("input_ids", idValue);
            _binding.BindInput("attention_mask", maskValue);
            _binding.BindOutputToDevice("logits", OrtMemoryInfo.DefaultInstance);
            _session.RunWithBinding(_run, _binding);
            using var outputs = _binding.GetOutputValues();
            var logits = outputs[0].GetTensorDataAsSpan<float>();
            var last = logits.Slice((ids.Length - 1) * _vocab, _vocab);
            int next = System.Numerics.Tensors.TensorPrimitives.IndexOfMax(last);
            if (next == eosId)
                break;
            generated.Add(next);
            tokens.Add(next);
        }
        return generated;
    }

    public void Dispose()
    {
        _binding.Dispose();
        _session.Dispose();
        foreach (var v in _views)
            v.Dispose();
        _run.Dispose();
    }
}
