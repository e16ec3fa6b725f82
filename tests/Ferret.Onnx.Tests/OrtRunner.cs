using Ferret.Onnx.Graphs;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace Ferret.Onnx.Tests;

/// <summary>Runs a graph in ONNX Runtime (CPU) on named inputs and returns named outputs as doubles.</summary>
internal sealed class OrtRunner : IDisposable
{
    private readonly InferenceSession _session;

    public OrtRunner(Graph graph, int opset = 18)
    {
        using var options = new SessionOptions { GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL, IntraOpNumThreads = 1 };
        _session = new InferenceSession(new OnnxModel(graph, opset).ToBytes(), options);
    }

    public OrtRunner(string path)
    {
        using var options = new SessionOptions { IntraOpNumThreads = 1 };
        _session = new InferenceSession(path, options);
    }

    public Dictionary<string, double[]> Run(IReadOnlyDictionary<string, (ElementType Type, double[] Data, long[] Shape)> inputs, params string[] outputs)
    {
        var values = new List<OrtValue>();
        try
        {
            var names = new List<string>();
            foreach (var (name, (type, data, shape)) in inputs)
            {
                names.Add(name);
                values.Add(type switch
                {
                    ElementType.Double => OrtValue.CreateTensorValueFromMemory(data.ToArray(), shape),
                    ElementType.Float => OrtValue.CreateTensorValueFromMemory(data.Select(v => (float)v).ToArray(), shape),
                    ElementType.Int64 => OrtValue.CreateTensorValueFromMemory(data.Select(v => (long)v).ToArray(), shape),
                    _ => throw new NotSupportedException(type.ToString()),
                });
            }
            using var runOptions = new RunOptions();
            using var results = _session.Run(runOptions, names, values, outputs);
            var dict = new Dictionary<string, double[]>();
            for (int i = 0; i < outputs.Length; i++)
            {
                var r = results[i];
                var t = r.GetTensorTypeAndShape().ElementDataType;
                dict[outputs[i]] = t switch
                {
                    TensorElementType.Double => r.GetTensorDataAsSpan<double>().ToArray(),
                    TensorElementType.Float => r.GetTensorDataAsSpan<float>().ToArray().Select(v => (double)v).ToArray(),
                    TensorElementType.Int64 => r.GetTensorDataAsSpan<long>().ToArray().Select(v => (double)v).ToArray(),
                    _ => throw new NotSupportedException(t.ToString()),
                };
            }
            return dict;
        }
        finally
        {
            foreach (var v in values)
                v.Dispose();
        }
    }

    public void Dispose() => _session.Dispose();
}
