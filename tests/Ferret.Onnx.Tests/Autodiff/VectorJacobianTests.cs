using Ferret.Onnx.Autodiff;
using Ferret.Onnx.Graphs;

namespace Ferret.Onnx.Tests.Autodiff;

public sealed class VectorJacobianTests
{
    /// <summary>y = tanh(x W): the product with an upstream u is dW = x^T g, dx = g W^T with g = u (1 - y^2).</summary>
    [Fact]
    public void The_vector_jacobian_product_of_a_block_matches_the_analytic_one()
    {
        var b = new GraphBuilder("block");
        var x = b.Input("x", ElementType.Double, new Dim(3), new Dim(4));
        var w = b.Input("w", ElementType.Double, new Dim(4), new Dim(2));
        var unused = b.Input("unused", ElementType.Double, new Dim(2));
        b.Output(b.Tanh(b.MatMul(x, w)), "y");
        b.Output(b.Mul(unused, unused), "side");
        var vjp = ReverseMode.AddVectorJacobianProduct(b.Build(), ["y"], ["x", "w"]);

        Assert.Equal(["x_grad", "w_grad"], vjp.Outputs.Select(o => o.Name));
        // The forward outputs are gone, and with them the work only they needed (the unused input too).
        Assert.Equal(["x", "w", "y_grad"], vjp.Inputs.Select(i => i.Name));
        Assert.DoesNotContain(vjp.Nodes, n => n.OpType == "Mul" && n.Inputs.Contains("unused"));

        var rng = new Random(3);
        double[] Random(int n) => Enumerable.Range(0, n).Select(_ => rng.NextDouble() - 0.5).ToArray();
        double[] xs = Random(12), ws = Random(8), us = Random(6);
        using var runner = new OrtRunner(vjp);
        var got = runner.Run(new Dictionary<string, (ElementType, double[], long[])>
        {
            ["x"] = (ElementType.Double, xs, [3, 4]),
            ["w"] = (ElementType.Double, ws, [4, 2]),
            ["y_grad"] = (ElementType.Double, us, [3, 2]),
        }, "x_grad", "w_grad");

        var g = new double[6];
        for (int r = 0; r < 3; r++)
        {
            for (int c = 0; c < 2; c++)
            {
                double y = Math.Tanh(Enumerable.Range(0, 4).Sum(k => xs[(r * 4) + k] * ws[(k * 2) + c]));
                g[(r * 2) + c] = us[(r * 2) + c] * (1 - (y * y));
            }
        }
        for (int r = 0; r < 3; r++)
        {
            for (int k = 0; k < 4; k++)
                Assert.Equal(Enumerable.Range(0, 2).Sum(c => g[(r * 2) + c] * ws[(k * 2) + c]), got["x_grad"][(r * 4) + k], 12);
        }
        for (int k = 0; k < 4; k++)
        {
            for (int c = 0; c < 2; c++)
                Assert.Equal(Enumerable.Range(0, 3).Sum(r => xs[(r * 4) + k] * g[(r * 2) + c]), got["w_grad"][(k * 2) + c], 12);
        }
    }

    [Fact]
    public void An_input_whose_value_the_gradient_does_not_read_stays_an_input()
    {
        var b = new GraphBuilder("bias");
        var x = b.Input("x", ElementType.Float, new Dim(2), new Dim(3));
        var bias = b.Input("bias", ElementType.Float, new Dim(3));
        b.Output(b.Add(x, bias), "y");
        var vjp = ReverseMode.AddVectorJacobianProduct(b.Build(), ["y"], ["bias"]);
        Assert.Contains(vjp.Inputs, i => i.Name == "bias");
        Assert.Equal(["bias_grad"], vjp.Outputs.Select(o => o.Name));
    }

    [Fact]
    public void Only_the_chosen_gradients_accumulate()
    {
        var b = new GraphBuilder("block");
        var x = b.Input("x", ElementType.Float, new Dim(2));
        var w = b.Input("w", ElementType.Float, new Dim(2));
        b.Output(b.Mul(x, w), "y");
        var vjp = ReverseMode.AddVectorJacobianProduct(b.Build(), ["y"], ["x", "w"]);
        var accumulating = GradientAccumulation.Accumulating(vjp, name => name != "x");
        Assert.Contains(accumulating.Inputs, i => i.Name == "w_grad_sum");
        Assert.DoesNotContain(accumulating.Inputs, i => i.Name == "x_grad_sum");
        Assert.Throws<ArgumentException>(() => GradientAccumulation.Accumulating(vjp, _ => false));
    }
}
