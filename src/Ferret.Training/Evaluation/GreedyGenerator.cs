using Ferret.Core.Parameters;
using Ferret.Training.Runtime;
using Microsoft.ML.OnnxRuntime;

namespace Ferret.Training.Evaluation;

/// <summary>
/// Greedy decoding through the package's logits graph: the whole prefix is re-run each step (no KV cache),
/// which is what small evaluation runs need. Parameters are a flat host buffer the caller edits between
/// prompts; each <see cref="Generate"/> binds them as they are then (a GPU takes its copy once per prompt).
/// </summary>
public sealed class GreedyGenerator : IDisposable
{
    private readonly InferenceSession _session;
    private readonly OrtIoBinding _binding;
    private readonly RunOptions _run = new();
    private readonly HostParameterInputs _inputs;
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
        _inputs = new HostParameterInputs(layout, parameters, settings);
    }

    /// <summary>The bound flat parameters; edit in place to evaluate another model state.</summary>
    public float[] Parameters { get; }

    /// <summary>Continues <paramref name="prompt"/> greedily until EOS or <paramref name="maxNewTokens"/>.</summary>
    public List<int> Generate(IReadOnlyList<int> prompt, int maxNewTokens, int eosId)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        _inputs.Bind(_binding);
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
        _inputs.Dispose();
        _run.Dispose();
    }
}
