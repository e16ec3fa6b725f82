using BenchmarkDotNet.Attributes;
using Ferret.Core.Parameters;
using Ferret.Core.Projection;
using Ferret.Core.Randomness;

namespace Ferret.Benchmarks;

/// <summary>The shared-randomness kernels on one 1M-element block with 16 seeds, per instruction set.</summary>
[MemoryDiagnoser]
public class KernelBenchmarks
{
    private const int Length = 1 << 20;
    private const int Seeds = 16;
    private readonly float[] _data = new float[Length];
    private readonly float[] _weights = new float[Length];
    private readonly ulong[] _seeds = SharedRandomness.CandidateSeeds(1, Seeds);
    private readonly double[] _dots = new double[Seeds];
    private readonly float[] _coefficients = Enumerable.Repeat(1e-3f, Seeds).ToArray();

    [Params(KernelPath.Scalar, KernelPath.Vector256, KernelPath.Vector512)]
    public KernelPath Path { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        var r = new Random(1);
        for (int i = 0; i < Length; i++)
            _data[i] = (float)(r.NextDouble() - 0.5);
    }

    [Benchmark(Description = "fill one basis (1M elements)")]
    public void Fill() => BasisKernels.Fill(_seeds[0], 0, 1e-3f, BasisDistribution.Uniform, _weights, 0, Path);

    [Benchmark(Description = "generate-and-dot, 16 seeds, 1 thread")]
    public void Dot() => BasisKernels.Dot(_seeds, 0, 1e-3f, BasisDistribution.Uniform, _data, 0, _dots, Path);

    [Benchmark(Description = "generate-and-subtract, 16 seeds, 1 thread")]
    public void Apply() => BasisKernels.Apply(_seeds, _coefficients, 0, 1e-3f, BasisDistribution.Uniform, _weights, 0, Path);
}

/// <summary>Projection and reconstruction over a model-shaped layout, all cores.</summary>
[MemoryDiagnoser]
public class ProjectionBenchmarks
{
    private readonly ParameterBlocks _blocks;
    private readonly float[] _delta;
    private readonly float[] _weights;
    private readonly ulong[] _candidates = SharedRandomness.CandidateSeeds(7, 200);
    private SeedCoordinates _gammas = new([], [], []);

    public ProjectionBenchmarks()
    {
        // A small-LLaMA-like layout: 4 layers of 7 matrices plus embeddings.
        var tensors = new List<(string, IReadOnlyList<long>)> { ("embed", new long[] { 4096, 256 }) };
        for (int l = 0; l < 4; l++)
        {
            foreach (var (name, rows, cols) in new[] { ("q", 256, 256), ("k", 128, 256), ("v", 128, 256), ("o", 256, 256), ("gate", 688, 256), ("up", 688, 256), ("down", 256, 688) })
                tensors.Add(($"l{l}.{name}", new long[] { rows, cols }));
        }
        var layout = new ParameterLayout(tensors);
        _blocks = ParameterBlocks.Partition(layout);
        _delta = new float[layout.TotalLength];
        _weights = new float[layout.TotalLength];
        var r = new Random(3);
        for (int i = 0; i < _delta.Length; i++)
            _delta[i] = (float)((r.NextDouble() - 0.5) * 1e-3);
    }

    [GlobalSetup]
    public void Setup() => _gammas = Projector.Project(_delta, _blocks, _candidates, BasisDistribution.Uniform, new Random(1));

    [Benchmark(Description = "Ferret projection, K = 200")]
    public SeedCoordinates Project() => Projector.Project(_delta, _blocks, _candidates, BasisDistribution.Uniform, new Random(1));

    [Benchmark(Description = "Ferret reconstruction, K = 200")]
    public void Reconstruct() => Reconstruction.Apply(_weights, _blocks, _gammas, _candidates, BasisDistribution.Uniform);

    [Benchmark(Description = "model fingerprint (SHA-256)")]
    public string Fingerprint() => ModelFingerprint.Compute(_weights);
}
