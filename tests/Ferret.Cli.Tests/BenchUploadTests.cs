using Ferret.Cli.Commands;
using Ferret.Core.Packets;
using Ferret.Core.Parameters;

namespace Ferret.Cli.Tests;

public class BenchUploadTests
{
    [Theory]
    [InlineData("llama-3b", 3_426_473_600L)]
    [InlineData("llama2-7b", 6_738_415_616L)]
    public void The_paper_shapes_have_their_published_parameter_counts(string name, long parameters)
    {
        var shape = BenchUploadCommand.Shapes.Single(s => s.Name == name);
        Assert.Equal(parameters, BenchUploadCommand.Layout(shape).TotalLength);
    }

    [Fact]
    public void A_blocks_role_is_its_first_tensor_without_the_layer_number()
    {
        var layout = BenchUploadCommand.Layout(BenchUploadCommand.Shapes[0]);
        var blocks = ParameterBlocks.Partition(layout);
        var roles = Enumerable.Range(0, blocks.Count).Select(b => BenchUploadCommand.Role(layout, blocks[b])).ToList();
        Assert.Contains("self_attn.q_proj.weight", roles);
        Assert.Contains("mlp.down_proj.weight", roles);
        // The two norms of a layer are small enough to share a block, marked with a plus.
        Assert.Contains("input_layernorm.weight+", roles);
        Assert.Equal(24, roles.Count(r => r == "self_attn.q_proj.weight"));
    }

    [Fact]
    public void Implied_packets_carry_the_measured_fraction_of_k_per_role_and_fedavg_four_bytes_a_parameter()
    {
        var layout = BenchUploadCommand.Layout(BenchUploadCommand.Shapes[1]);
        var blocks = ParameterBlocks.Partition(layout);
        var measured = new BenchUploadCommand.Measurement(
            new BenchUploadCommand.UploadRow("m", true, 1, 1, 1, 1, 1),
            new Dictionary<string, double> { ["self_attn.q_proj.weight"] = 0.5 }, 0.1, 60);
        var row = BenchUploadCommand.Imply("llama-3b", layout, measured, 200);
        int q = Enumerable.Range(0, blocks.Count).Count(b => BenchUploadCommand.Role(layout, blocks[b]) == "self_attn.q_proj.weight");
        int seeds = (q * 100) + ((blocks.Count - q) * 20);
        Assert.Equal(seeds / (double)blocks.Count, row.MeanSeedsPerBlock, 9);
        Assert.Equal((4 * layout.TotalLength) + 60, row.FedAvgBytes);
        // Each seed costs a 16-bit index and a float32 gamma; blocks are run-length coded; an envelope of a few dozen bytes.
        Assert.InRange(row.FerretBytes, 6L * seeds, (6L * seeds) + (8L * blocks.Count) + 200);
    }
}
