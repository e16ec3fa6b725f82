using Ferret.Core.Parameters;
using Ferret.Onnx.Models;

namespace Ferret.Onnx.Weights;

/// <summary>
/// <see cref="WeightInitializer.SystemRandom"/>: one <see cref="Random"/> drawn through the whole vector in flat
/// order, so slices must come strictly in order (a slice out of order would silently change the weights).
/// </summary>
public sealed class SystemRandomWeights : IParameterSource
{
    private readonly ModelConfig _config;
    private readonly Random _random;
    private int _tensor;
    private long _next;

    public SystemRandomWeights(ModelConfig config, ParameterLayout layout, int seed)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(layout);
        _config = config;
        Layout = layout;
        _random = new Random(seed);
    }

    public ParameterLayout Layout { get; }

    public void Read(int tensor, long start, Memory<float> destination)
    {
        if (tensor != _tensor || start != _next)
            throw new InvalidOperationException($"Seeded weights are drawn in flat order: expected tensor {_tensor} from element {_next}, asked for tensor {tensor} from {start}.");
        var t = Layout.Tensors[tensor];
        var span = destination.Span;
        var (constant, std) = WeightRoles.Of(t.Name, _config);
        if (constant is float c)
        {
            span.Fill(c);
        }
        else
        {
            for (int i = 0; i < span.Length; i++)
            {
                double u1 = 1.0 - _random.NextDouble();
                double u2 = _random.NextDouble();
                span[i] = (float)(std * Math.Sqrt(-2.0 * Math.Log(u1)) * Math.Cos(2.0 * Math.PI * u2));
            }
        }
        _next = start + span.Length;
        if (_next == t.Length)
        {
            _tensor++;
            _next = 0;
        }
    }

    public void Dispose()
    {
    }
}
