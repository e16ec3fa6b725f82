using Ferret.Onnx.Autodiff;
using Ferret.Onnx.Graphs;
using static Ferret.Onnx.Tests.Autodiff.FiniteDifference;

namespace Ferret.Onnx.Tests.Autodiff;

/// <summary>
/// Every gradient rule against central finite differences in double precision (float where ONNX Runtime's
/// CPU kernels have no double version), along three random directions. Double: relative error below 1e-6.
/// </summary>
public class GradientRuleTests
{
    private const double Tolerance = 1e-6;

    private static void Ok(double error, double tolerance = Tolerance) => Assert.True(error < tolerance, $"relative error {error:E3} >= {tolerance:E1}");

    private static double[] Positive(int n, int seed = 3) => Enumerable.Range(0, n).Select(i => 0.5 + (new Random(seed + i).NextDouble() * 1.5)).ToArray();

    private static double[] AwayFromZero(int n) => Enumerable.Range(0, n).Select(i => (i % 2 == 0 ? 1 : -1) * (0.2 + (0.1 * (i % 7)))).ToArray();

    [Fact]
    public void Add_with_broadcasting() => Ok(Check((b, x) => b.Add(x[0], x[1]), [new("a", [3, 4]), new("b", [4])]));

    [Fact]
    public void Add_with_broadcast_inside_the_shape() => Ok(Check((b, x) => b.Add(x[0], x[1]), [new("a", [2, 3, 4]), new("b", [3, 1])]));

    [Fact]
    public void Sub_with_broadcasting() => Ok(Check((b, x) => b.Sub(x[0], x[1]), [new("a", [1, 4]), new("b", [3, 4])]));

    [Fact]
    public void Mul_with_broadcasting() => Ok(Check((b, x) => b.Mul(x[0], x[1]), [new("a", [3, 4]), new("b", [3, 1])]));

    [Fact]
    public void Div_with_broadcasting() => Ok(Check((b, x) => b.Div(x[0], x[1]), [new("a", [3, 4]), new("b", [4], Values: Positive(4))]));

    [Fact]
    public void Neg() => Ok(Check((b, x) => b.Neg(x[0]), [new("a", [5])]));

    [Theory]
    [InlineData(2.0)]
    [InlineData(3.0)]
    [InlineData(-0.5)]
    public void Pow_with_a_constant_exponent(double p) =>
        Ok(Check((b, x) => b.Pow(x[0], b.Scalar(p, ElementType.Double)), [new("a", [6], Values: Positive(6))]));

    [Fact]
    public void Pow_with_a_tensor_exponent() =>
        Ok(Check((b, x) => b.Pow(x[0], x[1]), [new("a", [2, 3], Values: Positive(6)), new("e", [3])]));

    [Fact]
    public void Sqrt() => Ok(Check((b, x) => b.Sqrt(x[0]), [new("a", [6], Values: Positive(6))]));

    [Fact]
    public void Reciprocal() => Ok(Check((b, x) => b.Reciprocal(x[0]), [new("a", [6], Values: Positive(6))]));

    [Fact]
    public void Exp() => Ok(Check((b, x) => b.Exp(x[0]), [new("a", [2, 3])]));

    [Fact]
    public void Log() => Ok(Check((b, x) => b.Log(x[0]), [new("a", [6], Values: Positive(6))]));

    [Fact]
    public void Tanh() => Ok(Check((b, x) => b.Tanh(x[0]), [new("a", [2, 3])]));

    [Fact]
    public void Sigmoid() => Ok(Check((b, x) => b.Sigmoid(x[0]), [new("a", [2, 3])]));

    [Fact]
    public void Erf_in_float() => Ok(Check((b, x) => b.Erf(x[0]), [new("a", [2, 3])], ElementType.Float, step: 1e-2), 2e-3);

    [Fact]
    public void Relu() => Ok(Check((b, x) => b.Relu(x[0]), [new("a", [8], Values: AwayFromZero(8))]));

    [Fact]
    public void Abs() => Ok(Check((b, x) => b.Op("Abs", [x[0]])[0], [new("a", [8], Values: AwayFromZero(8))]));

    [Fact]
    public void Max_and_min() =>
        Ok(Check((b, x) => b.Add(b.Max(x[0], x[1]), b.Min(x[0], x[1])), [new("a", [3, 4]), new("b", [4])]));

    [Fact]
    public void Clip() =>
        Ok(Check((b, x) => b.Op("Clip", [x[0], b.Scalar(-0.5, ElementType.Double), b.Scalar(0.5, ElementType.Double)])[0],
            [new("a", [8], Values: [-0.9, -0.3, 0.1, 0.7, 0.45, -0.45, 0.2, 1.5])]));

    [Theory]
    [InlineData(-1)]
    [InlineData(0)]
    public void Softmax(long axis) => Ok(Check((b, x) => b.Softmax(x[0], axis), [new("a", [3, 5])]));

    [Fact]
    public void LogSoftmax() => Ok(Check((b, x) => b.LogSoftmax(x[0], -1), [new("a", [2, 3, 5])]));

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void ReduceSum(bool keep) => Ok(Check((b, x) => b.ReduceSum(x[0], [1], keep), [new("a", [2, 3, 4])]));

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void ReduceMean(bool keep) => Ok(Check((b, x) => b.ReduceMean(x[0], [0, 2], keep), [new("a", [2, 3, 4])]));

    [Fact]
    public void MatMul_of_matrices() => Ok(Check((b, x) => b.MatMul(x[0], x[1]), [new("a", [3, 4]), new("b", [4, 5])]));

    [Fact]
    public void MatMul_of_a_batch_of_rows_by_a_weight() => Ok(Check((b, x) => b.MatMul(x[0], x[1]), [new("a", [2, 3, 4]), new("w", [4, 5])]));

    [Fact]
    public void MatMul_batched_with_broadcasting() => Ok(Check((b, x) => b.MatMul(x[0], x[1]), [new("a", [2, 2, 3, 4]), new("b", [2, 4, 5])]));

    [Fact]
    public void MatMul_with_vectors() =>
        Ok(Check((b, x) => b.Add(b.MatMul(x[0], x[1]), b.MatMul(x[1], x[2])), [new("v", [4]), new("m", [4, 4]), new("u", [4])]));

    [Theory]
    [InlineData(false, false)]
    [InlineData(true, false)]
    [InlineData(false, true)]
    [InlineData(true, true)]
    public void Gemm(bool ta, bool tb) =>
        Ok(Check((b, x) => b.Gemm(x[0], x[1], x[2], ta, tb, alpha: 0.7f, beta: 1.3f),
            [new("a", ta ? [4, 3] : [3, 4]), new("b", tb ? [5, 4] : [4, 5]), new("c", [5])]));

    [Fact]
    public void LayerNormalization_with_bias() =>
        Ok(Check((b, x) => b.LayerNormalization(x[0], x[1], x[2], -1, 1e-5f), [new("x", [2, 3, 6]), new("g", [6]), new("beta", [6])]));

    [Fact]
    public void Gather_of_embeddings_with_repeated_ids() =>
        Ok(Check((b, x) => b.Gather(x[0], x[1]), [new("table", [5, 3]), new("ids", [2, 3], false, [0, 4, 4, 1, 0, 4], ElementType.Int64)]));

    [Fact]
    public void Reshape_transpose_squeeze_unsqueeze() =>
        Ok(Check((b, x) => b.Squeeze(b.Unsqueeze(b.Transpose(b.Reshape(x[0], 2, 0, 2), 2, 0, 1), 1), 1), [new("a", [4, 3])]));

    [Fact]
    public void Slice_with_negative_end() =>
        Ok(Check((b, x) => b.Slice(x[0], [1, 0], [int.MaxValue, -1], [0, 1]), [new("a", [4, 5])]));

    [Fact]
    public void Concat_and_split() =>
        Ok(Check((b, x) =>
        {
            var parts = b.Split(b.Concat(1, x[0], x[1]), 1, 2, 5);
            return b.Mul(parts[1], parts[1]);
        }, [new("a", [3, 4]), new("b", [3, 3])]));

    [Fact]
    public void Split_with_an_unused_part() =>
        Ok(Check((b, x) => b.Split(x[0], 0, 1, 2)[1], [new("a", [3, 2])]));

    [Fact]
    public void Expand() => Ok(Check((b, x) => b.Expand(x[0], b.Int64s(2, 3, 4)), [new("a", [3, 1])]));

    [Fact]
    public void Where() =>
        Ok(Check((b, x) => b.Where(b.Greater(x[2], b.Scalar(0, ElementType.Double)), x[0], x[1]),
            [new("a", [3, 4]), new("b", [4]), new("c", [3, 4], false)]));

    [Fact]
    public void Cast_between_floating_types() => Ok(Check((b, x) => b.Cast(b.Mul(b.Cast(x[0], ElementType.Float), b.Cast(x[0], ElementType.Float)), ElementType.Double), [new("a", [5])], step: 1e-2), 1e-4);

    [Fact]
    public void Identity_and_trilu() => Ok(Check((b, x) => b.Trilu(b.Identity(x[0]), upper: false), [new("a", [4, 4])]));

    [Theory]
    [InlineData("mean")]
    [InlineData("sum")]
    [InlineData("none")]
    public void SoftmaxCrossEntropyLoss_with_ignored_labels(string reduction) =>
        Ok(Check((b, x) => b.SoftmaxCrossEntropyLoss(x[0], x[1], -100, reduction),
            [new("scores", [5, 4]), new("labels", [5], false, [1, -100, 3, 0, -100], ElementType.Int64)]));

    [Fact]
    public void A_value_used_twice_accumulates_both_gradients() =>
        Ok(Check((b, x) => b.Add(b.Mul(x[0], x[0]), b.Tanh(x[0])), [new("a", [6])]));

    [Fact]
    public void A_two_layer_mlp_with_layer_norm_and_cross_entropy()
    {
        Ok(Check((b, x) =>
        {
            var h = b.Relu(b.Add(b.MatMul(x[0], x[1]), x[2]));
            var n = b.LayerNormalization(h, x[3], null, -1, 1e-5f);
            var logits = b.MatMul(n, x[4]);
            return b.SoftmaxCrossEntropyLoss(b.Reshape(logits, -1, 3), b.Reshape(x[5], -1), -100);
        },
        [
            new("x", [2, 4, 5]), new("w1", [5, 6]), new("b1", [6]), new("ln", [6]), new("w2", [6, 3]),
            new("labels", [2, 4], false, [0, 2, 1, -100, 2, 2, 0, 1], ElementType.Int64),
        ]));
    }

    [Fact]
    public void The_check_fails_for_a_wrong_rule()
    {
        // Register a deliberately wrong rule for an op no graph uses, prove the harness sees the error.
        GradientRules.Register("Softsign", c => [c.DY()]);
        double error = Check((b, x) => b.Op("Softsign", [x[0]], outputTypes: [x[0].Type])[0], [new("a", [5])]);
        Assert.True(error > 1e-2, $"a wrong rule passed with error {error}");
    }

    [Fact]
    public void An_operator_without_a_rule_fails_naming_the_op_and_node()
    {
        var b = new GraphBuilder("g");
        var x = b.Input("x", ElementType.Float, 3);
        var y = b.Op("Elu", [x], outputTypes: [x.Type])[0];
        b.Output(b.ReduceSum(y, [0], keepDims: false), "loss");
        var e = Assert.Throws<NotSupportedException>(() => ReverseMode.AddGradients(b.Build(), "loss", ["x"]));
        Assert.Contains("Elu", e.Message);
        Assert.Contains("/Elu", e.Message);
    }

    [Fact]
    public void Non_scalar_losses_and_unknown_inputs_are_refused()
    {
        var b = new GraphBuilder("g");
        var x = b.Input("x", ElementType.Float, 3);
        var y = b.Exp(x);
        b.Output(y, "y");
        b.Output(b.ReduceSum(y, [0], keepDims: false), "loss");
        var g = b.Build();
        Assert.Contains("scalar", Assert.Throws<ArgumentException>(() => ReverseMode.AddGradients(g, "y", ["x"])).Message);
        Assert.Contains("'w' is not an input", Assert.Throws<ArgumentException>(() => ReverseMode.AddGradients(g, "loss", ["w"])).Message);
        Assert.Contains("no value 'nope'", Assert.Throws<ArgumentException>(() => ReverseMode.AddGradients(g, "nope", ["x"])).Message);
    }

    [Fact]
    public void An_input_the_loss_does_not_use_gets_a_zero_gradient()
    {
        var b = new GraphBuilder("g");
        var x = b.Input("x", ElementType.Double, 3);
        b.Input("unused", ElementType.Double, 2);
        b.Output(b.ReduceSum(b.Mul(x, x), [0], keepDims: false), "loss");
        var train = ReverseMode.AddGradients(b.Build(), "loss", ["x", "unused"]);
        using var run = new OrtRunner(train);
        var r = run.Run(new Dictionary<string, (ElementType, double[], long[])>
        {
            ["x"] = (ElementType.Double, [1, 2, 3], [3]),
            ["unused"] = (ElementType.Double, [5, 6], [2]),
        }, "x_grad", "unused_grad");
        Assert.Equal([2.0, 4, 6], r["x_grad"]);
        Assert.Equal([0.0, 0], r["unused_grad"]);
    }
}
