using Ferret.Onnx.Autodiff;
using Ferret.Onnx.Graphs;

namespace Ferret.Onnx.Tests.Autodiff;

/// <summary>
/// Checks a graph's generated gradients against central finite differences along random directions.
/// The forward graph is built by the caller from named inputs; the loss is <c>sum(y * W)</c> with a fixed
/// random weight tensor W, so every element of the operator's output matters.
/// </summary>
internal static class FiniteDifference
{
    public sealed record Input(string Name, long[] Shape, bool Differentiate = true, double[]? Values = null, ElementType? Type = null);

    /// <summary>Builds op(inputs) -> y, differentiates sum(y * W), and returns the largest relative error over directions.</summary>
    public static double Check(
        Func<GraphBuilder, IReadOnlyList<Value>, Value> op, IReadOnlyList<Input> inputs,
        ElementType type = ElementType.Double, int directions = 3, double step = 1e-5, int seed = 1)
    {
        var rng = new Random(seed);
        var b = new GraphBuilder("fd");
        var values = inputs.Select(i => b.Input(i.Name, i.Type ?? type, i.Shape.Select(d => new Dim(d)).ToArray())).ToList();
        var y = op(b, values);
        var yShape = y.Shape ?? throw new InvalidOperationException("The operator's output shape must be inferable in a test.");
        long ySize = yShape.Aggregate(1L, (a, d) => a * (d.Value ?? throw new InvalidOperationException("static shapes only")));
        var w = Enumerable.Range(0, (int)ySize).Select(_ => rng.NextDouble() - 0.5).ToArray();
        var weight = b.Constant(type == ElementType.Double
            ? TensorData.FromDoubles(w, yShape.Select(d => d.Value!.Value).ToArray())
            : TensorData.FromFloats(w.Select(v => (float)v).ToArray(), yShape.Select(d => d.Value!.Value).ToArray()));
        var yCast = y.ElementType == type ? y : b.Cast(y, type);
        var loss = b.ReduceSum(b.Mul(yCast, weight), Enumerable.Range(0, yShape.Length).Select(i => (long)i).ToArray(), keepDims: false);
        b.Output(loss, "loss");
        var forward = b.Build();
        var wrt = inputs.Where(i => i.Differentiate).Select(i => i.Name).ToList();
        var train = ReverseMode.AddGradients(forward, "loss", wrt);

        var feed = new Dictionary<string, (ElementType, double[], long[])>();
        foreach (var i in inputs)
        {
            long n = i.Shape.Aggregate(1L, (a, d) => a * d);
            var data = i.Values ?? Enumerable.Range(0, (int)n).Select(_ => (rng.NextDouble() * 2) - 1).ToArray();
            feed[i.Name] = (i.Type ?? type, data, i.Shape);
        }
        using var runner = new OrtRunner(train);
        var grads = runner.Run(feed, [.. wrt.Select(n => n + ReverseMode.GradientSuffix)]);
        double worst = 0;
        for (int d = 0; d < directions; d++)
        {
            var dir = wrt.ToDictionary(n => n, n => feed[n].Item2.Select(_ => rng.NextDouble() - 0.5).ToArray());
            double analytic = wrt.Sum(n => grads[n + ReverseMode.GradientSuffix].Zip(dir[n], (g, v) => g * v).Sum());
            double Loss(double sign)
            {
                var shifted = new Dictionary<string, (ElementType, double[], long[])>(feed);
                foreach (var n in wrt)
                    shifted[n] = (feed[n].Item1, feed[n].Item2.Zip(dir[n], (x, v) => x + (sign * step * v)).ToArray(), feed[n].Item3);
                return runner.Run(shifted, "loss")["loss"][0];
            }
            double numeric = (Loss(1) - Loss(-1)) / (2 * step);
            double error = Math.Abs(analytic - numeric) / Math.Max(Math.Max(Math.Abs(analytic), Math.Abs(numeric)), 1e-6);
            worst = Math.Max(worst, error);
        }
        return worst;
    }
}
