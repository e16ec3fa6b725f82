using BenchmarkDotNet.Attributes;
using Ferret.Core.Randomness;

namespace Ferret.Benchmarks;

/// <summary>
/// Seeded weight initialisation, 4M values (16 MiB, one export chunk): counter-based Philox normals per instruction
/// set and thread count, against the small presets' sequential System.Random Box-Muller.
/// </summary>
[MemoryDiagnoser]
public class InitializerBenchmarks
{
    private const int Length = 1 << 22;
    private readonly float[] _weights = new float[Length];

    [Params(KernelPath.Scalar, KernelPath.Vector256, KernelPath.Vector512)]
    public KernelPath Path { get; set; }

    [Benchmark(Description = "philox normals, 1 thread")]
    public void PhiloxOneThread() => PhiloxNormal.Fill(1, 0, 0.02f, _weights, 0, Path);

    [Benchmark(Description = "philox normals, all cores")]
    public void PhiloxAllCores() => PhiloxNormal.FillParallel(1, 0, 0.02f, _weights, 0, path: Path);

    [Benchmark(Baseline = true, Description = "System.Random Box-Muller, 1 thread")]
    public void SystemRandom()
    {
        // The small presets' recipe (Ferret.Onnx.Weights.SystemRandomWeights); the path parameter does not apply.
        var random = new Random(1);
        for (int i = 0; i < _weights.Length; i++)
        {
            double u1 = 1.0 - random.NextDouble();
            double u2 = random.NextDouble();
            _weights[i] = (float)(0.02 * Math.Sqrt(-2.0 * Math.Log(u1)) * Math.Cos(2.0 * Math.PI * u2));
        }
    }
}
