using Ferret.Training.Verification;

namespace Ferret.Training.Tests.Reference;

/// <summary>
/// End-to-end finite differences on the exported float32 training graphs: with a step of 1e-3 along
/// gradient-mixed unit directions the truncation and rounding errors stay near 1e-4, so 1e-3 is the bound.
/// </summary>
public sealed class GradientCheckTests(ArtifactFixture artifacts) : IClassFixture<ArtifactFixture>
{
    [Theory]
    [InlineData("tiny-llama")]
    [InlineData("tiny-gpt2")]
    public void Exported_training_graphs_pass_the_gradient_check(string preset)
    {
        var result = GradientCheck.Run(artifacts.Get(preset), directions: 3);
        Assert.True(result.MaxRelativeError < 1e-3, $"{preset}: largest relative error {result.MaxRelativeError:E2}");
        Assert.All(result.Directions, d => Assert.True(d.Analytic > 0));
    }
}
