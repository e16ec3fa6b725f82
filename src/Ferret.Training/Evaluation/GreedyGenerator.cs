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
    public List<int> Generate(IReadOnlyList<int> prompt, int maxNewTokens, int eosId) => Generate(prompt, maxNewTokens, eosId, 0, null);

    /// <summary>
    /// Continues <paramref name="prompt"/> until EOS or <paramref name="maxNewTokens"/>: greedily at temperature 0,
    /// else sampling from <c>softmax(logits / temperature)</c> with <paramref name="random"/> (reproducible for a seed).
    /// </summary>
    public List<int> Generate(IReadOnlyList<int> prompt, int maxNewTokens, int eosId, double temperature, Random? random)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        if (!(temperature >= 0) || double.IsInfinity(temperature))
            throw new ArgumentException($"Temperature {temperature} must be finite and >= 0.", nameof(temperature));
        if (temperature > 0 && random is null)
            throw new ArgumentNullException(nameof(random), "Sampling at a temperature above 0 needs a random source.");
        _inputs.Bind(_binding);
        var tokens = prompt.Select(t => (long)t).ToList();
        var generated = new List<int>();
        var scaled = new float[_vocab];
        for (int step = 0; step < maxNewTokens; step++)
        {
            var ids = tokens.ToArray();
            var mask = new long[ids.Length];
            Array.Fill(mask, 1L);
            int next = -1;
            Run(ids, mask, 1, ids.Length, logits =>
            {
                var last = logits.Slice((ids.Length - 1) * _vocab, _vocab);
                next = temperature == 0 ? System.Numerics.Tensors.TensorPrimitives.IndexOfMax(last) : Sample(last, temperature, random!, scaled);
            });
            if (next == eosId)
                break;
            generated.Add(next);
            tokens.Add(next);
        }
        return generated;
    }

    /// <summary>The logits <c>[rows, seq, vocab]</c> of a batch (row-major), for checks against other implementations.</summary>
    public float[] Logits(long[] inputIds, long[] attentionMask, int rows, int seq)
    {
        ArgumentNullException.ThrowIfNull(inputIds);
        ArgumentNullException.ThrowIfNull(attentionMask);
        if (inputIds.Length != rows * seq || attentionMask.Length != rows * seq)
            throw new ArgumentException($"A batch of {rows} x {seq} needs {rows * seq} ids and mask values.");
        float[] result = [];
        _inputs.Bind(_binding);
        Run(inputIds, attentionMask, rows, seq, logits => result = logits.ToArray());
        return result;
    }

    private delegate void LogitsReader(ReadOnlySpan<float> logits);

    private void Run(long[] ids, long[] mask, int rows, int seq, LogitsReader read)
    {
        using var idValue = OrtValue.CreateTensorValueFromMemory(ids, [rows, seq]);
        using var maskValue = OrtValue.CreateTensorValueFromMemory(mask, [rows, seq]);
        _binding.BindInput("input_ids", idValue);
        _binding.BindInput("attention_mask", maskValue);
        _binding.BindOutputToDevice("logits", OrtMemoryInfo.DefaultInstance);
        _session.RunWithBinding(_run, _binding);
        using var outputs = _binding.GetOutputValues();
        read(outputs[0].GetTensorDataAsSpan<float>());
    }

    /// <summary>One draw from <c>softmax(logits / temperature)</c>.</summary>
    private static int Sample(ReadOnlySpan<float> logits, double temperature, Random random, float[] scratch)
    {
        System.Numerics.Tensors.TensorPrimitives.Multiply(logits, (float)(1 / temperature), scratch);
        System.Numerics.Tensors.TensorPrimitives.SoftMax(scratch, scratch);
        double u = random.NextDouble(), cumulative = 0;
        for (int i = 0; i < scratch.Length; i++)
        {
            cumulative += scratch[i];
            if (u < cumulative)
                return i;
        }
        return System.Numerics.Tensors.TensorPrimitives.IndexOfMax(scratch);
    }

    public void Dispose()
    {
        _binding.Dispose();
        _session.Dispose();
        _inputs.Dispose();
        _run.Dispose();
    }
}
