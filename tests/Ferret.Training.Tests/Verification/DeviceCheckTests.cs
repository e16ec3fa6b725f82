using Ferret.Training.Runtime;
using Ferret.Training.Verification;

namespace Ferret.Training.Tests.Verification;

public sealed class DeviceCheckTests(ArtifactFixture artifacts) : IClassFixture<ArtifactFixture>
{
    /// <summary>A reference of one tensor: w0 = 1..n, g = 0.5 each, loss 2.</summary>
    private sealed class FixedReference : DeviceCheck.Reference
    {
        public FixedReference() => Loss = 2f;

        public override void Read(int tensor, Span<float> parameters, Span<float> gradient)
        {
            for (int i = 0; i < parameters.Length; i++)
            {
                parameters[i] = i + 1;
                gradient[i] = 0.5f;
            }
        }
    }

    private static DevicePathCheck Judge(float loss, float[] gradient, float[] stepped)
    {
        var errors = new DeviceCheck.Errors(new FixedReference(), 0.1f);
        errors.AddGradient(0, gradient);
        errors.AddParameters(0, stepped);
        return errors.Result("resident", ExecutionDevice.Cuda(), loss, 1, null, DeviceCheckTolerances.Tf32);
    }

    private static float[] Stepped(int n, float gradient) => Enumerable.Range(1, n).Select(w => w - (0.1f * gradient)).ToArray();

    [Fact]
    public void A_path_that_agrees_passes()
    {
        var result = Judge(2.001f, Enumerable.Repeat(0.5f, 8).ToArray(), Stepped(8, 0.5f));
        Assert.True(result.Passed, result.Note);
        Assert.True(result.GradientError < 1e-9, $"gradient error {result.GradientError}");
    }

    [Fact]
    public void Stale_parameters_show_as_a_wrong_loss_and_gradient()
    {
        // What the stale CUDA binding produced: the loss and gradient of zero parameters, and a step that went nowhere useful.
        var result = Judge(5.5568f, new float[8], Stepped(8, 0f));
        Assert.False(result.Passed, "zero parameters fail the check");
        Assert.Contains("loss 5.5568 against the cpu's 2", result.Note);
        Assert.Contains("gradient relative error 1.00E+000", result.Note);
        Assert.Contains("parameters after one SGD step", result.Note);
    }

    [Fact]
    public void A_step_to_the_wrong_place_fails_even_when_the_gradient_agrees()
    {
        var result = Judge(2f, Enumerable.Repeat(0.5f, 8).ToArray(), Stepped(8, 0.6f));
        Assert.False(result.Passed, "a wrong step fails the check");
        Assert.DoesNotContain("gradient", result.Note);
        Assert.Contains("parameters after one SGD step: relative error 2.00E-001", result.Note);
    }

    [Fact]
    public void Non_finite_values_fail()
    {
        var result = Judge(float.NaN, Enumerable.Repeat(0.5f, 8).ToArray(), Stepped(8, 0.5f));
        Assert.False(result.Passed, "non-finite values fail the check");
        Assert.Contains("non-finite", result.Note);
    }

    [Fact]
    public void The_cpu_resident_path_agrees_with_the_cpu_host_path_on_a_real_model()
    {
        var report = DeviceCheck.Run(artifacts.Get("tiny-llama"), new DeviceCheckOptions { Sequence = 16, IntraOpThreads = 1, TimedSteps = 1 });
        Assert.True(report.Passed, report.Failure);
        Assert.Equal(["reference", "resident"], report.Paths.Select(p => p.Path));
        var resident = report.Paths[1];
        Assert.True(resident.LossError <= DeviceCheckTolerances.Cpu.Loss, $"loss error {resident.LossError}");
        Assert.True(resident.GradientError <= DeviceCheckTolerances.Cpu.Gradient, $"gradient error {resident.GradientError}");
        Assert.True(resident.ParameterError <= DeviceCheckTolerances.Cpu.Parameters, $"step error {resident.ParameterError}");
    }
}
