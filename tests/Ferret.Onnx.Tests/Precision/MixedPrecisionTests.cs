using Ferret.Onnx.Autodiff;
using Ferret.Onnx.Graphs;
using Ferret.Onnx.Models;
using Ferret.Onnx.Precision;

namespace Ferret.Onnx.Tests.Precision;

public sealed class MixedPrecisionTests
{
    private static (Graph Forward, IReadOnlyList<string> Parameters) TinyLlama()
    {
        var builder = DecoderBuilder.For(Presets.Get("tiny-llama").Config);
        return (builder.Build(GraphKind.Loss), builder.Parameters().Select(p => p.Name).ToList());
    }

    [Fact]
    public void Every_linear_layer_reads_bf16_and_hands_float32_on_while_the_contract_stays_float32()
    {
        var (forward, parameters) = TinyLlama();
        var mixed = MixedPrecision.Bf16Products(forward);
        var gemms = mixed.Nodes.Where(n => n.OpType == "Gemm").ToList();
        Assert.Equal(forward.Nodes.Count(n => n.OpType == "Gemm"), gemms.Count);
        Assert.All(gemms, g =>
        {
            Assert.All(g.Inputs.Where(i => i.Length > 0), i => Assert.True(mixed.TypeOf(i)!.ElementType == ElementType.BFloat16, $"{g}: input {i} is {mixed.TypeOf(i)}"));
            Assert.Equal(ElementType.BFloat16, mixed.TypeOf(g.Outputs[0])!.ElementType);
        });
        // Attention's batched products stay float32.
        Assert.All(mixed.Nodes.Where(n => n.OpType == "MatMul"), m => Assert.Equal(ElementType.Float, mixed.TypeOf(m.Outputs[0])!.ElementType));
        // A weight is cast once however often it is read; inputs and outputs keep their names and float32 types.
        Assert.Equal(mixed.Nodes.Count(n => n.OpType == "Cast"), mixed.Nodes.Where(n => n.OpType == "Cast").Select(n => n.Inputs[0]).Distinct().Count());
        Assert.Equal(forward.Inputs.Select(i => (i.Name, i.Type.ElementType)), mixed.Inputs.Select(i => (i.Name, i.Type.ElementType)));
        Assert.Equal(forward.Outputs.Select(o => (o.Name, o.Type.ElementType)), mixed.Outputs.Select(o => (o.Name, o.Type.ElementType)));

        var train = ReverseMode.AddGradients(mixed, DecoderBuilder.Loss, parameters);
        Assert.All(parameters, p => Assert.Equal(ElementType.Float, train.Outputs.Single(o => o.Name == p + ReverseMode.GradientSuffix).Type.ElementType));
        // The backward linear products run in bf16 too (two per forward Gemm: input and weight gradients).
        Assert.Equal(3 * gemms.Count, train.Nodes.Count(n => n.OpType == "Gemm" && train.TypeOf(n.Outputs[0])!.ElementType == ElementType.BFloat16));
    }

    [Theory]
    [InlineData("fp32", ComputePrecision.Float32)]
    [InlineData("BF16-Mixed", ComputePrecision.Bf16Mixed)]
    public void Precisions_parse_case_insensitively(string text, ComputePrecision expected) => Assert.Equal(expected, MixedPrecision.Parse(text));

    [Fact]
    public void An_unknown_precision_names_the_choices() =>
        Assert.Contains("expected fp32 or bf16-mixed", Assert.Throws<ArgumentException>(() => MixedPrecision.Parse("fp8")).Message);
}
