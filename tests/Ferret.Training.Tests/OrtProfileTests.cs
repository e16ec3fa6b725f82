using Ferret.Training.Runtime;

namespace Ferret.Training.Tests;

public class OrtProfileTests
{
    [Fact]
    public void Kernel_time_is_summed_per_operator_and_sorted()
    {
        var path = Path.Combine(Path.GetTempPath(), $"ferret-profile-{Guid.NewGuid():N}.json");
        File.WriteAllText(path, """
            [
              {"cat":"Session","name":"session_initialization","dur":5000},
              {"cat":"Node","name":"mm1_kernel_time","dur":300,"args":{"op_name":"MatMul"}},
              {"cat":"Node","name":"mm1_fence_before","dur":1,"args":{"op_name":"MatMul"}},
              {"cat":"Node","name":"mm2_kernel_time","dur":500,"args":{"op_name":"MatMul"}},
              {"cat":"Node","name":"sm_kernel_time","dur":200,"args":{"op_name":"Softmax"}}
            ]
            """);
        try
        {
            var ops = OrtProfile.ByOperator(path);
            Assert.Equal(2, ops.Count);
            Assert.Equal(new OperatorTime("MatMul", 800, 2, 0.8), ops[0]);
            Assert.Equal("Softmax", ops[1].OpType);
            Assert.Equal(0.2, ops[1].Share, 9);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void A_file_that_is_not_a_trace_names_the_file()
    {
        var path = Path.Combine(Path.GetTempPath(), $"ferret-profile-{Guid.NewGuid():N}.json");
        File.WriteAllText(path, "{ not json");
        try
        {
            var e = Assert.Throws<InvalidDataException>(() => OrtProfile.ByOperator(path));
            Assert.Contains(path, e.Message);
        }
        finally
        {
            File.Delete(path);
        }
    }
}
