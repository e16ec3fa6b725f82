using Ferret.Training.Optimizers;

namespace Ferret.Training.Tests.Optimizers;

/// <summary>
/// Known answers from PyTorch 1.13 (torch.optim.SGD / AdamW, three steps on an 11-element vector with the
/// gradients below), produced by a one-off script; our optimizers must reproduce them to float precision.
/// </summary>
public class OptimizerTests
{
    private static readonly float[] W0 = [0.5f, -1.25f, 2.0f, 0.0f, 3.5f, -0.75f, 1.0f, -2.0f, 0.25f, 0.125f, -0.5f];

    private static float[][] Gradients()
    {
        var grads = new float[3][];
        for (int s = 0; s < 3; s++)
        {
            grads[s] = new float[11];
            for (int i = 0; i < 11; i++)
                grads[s][i] = (float)(((i * 0.37) - 1.1) * (s + 1) * (i % 2 == 1 ? 0.5 : -1.0));
        }
        return grads;
    }

    private static float[] Run(IOptimizer optimizer)
    {
        var w = (float[])W0.Clone();
        foreach (var g in Gradients())
            optimizer.Step(w, g);
        return w;
    }

    private static void AssertClose(float[] expected, float[] actual, float relative = 2e-6f)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(expected[i] - actual[i]) <= relative * Math.Max(1f, Math.Abs(expected[i])),
                $"element {i}: expected {expected[i]:G9}, got {actual[i]:G9}");
    }

    [Fact]
    public void Sgd_matches_pytorch()
    {
        AssertClose([-0.1600000262260437f, -1.031000018119812f, 1.7839999198913574f, -0.003000000026077032f, 3.7280001640319824f, -0.9750000238418579f, 1.6719999313354492f, -2.447000026702881f, 1.3659999370574951f, -0.5440000295639038f, 1.059999942779541f],
            Run(new Sgd(0.1f)));
    }

    [Fact]
    public void Sgd_with_momentum_and_weight_decay_matches_pytorch()
    {
        AssertClose([-0.548264741897583f, -0.8960902094841003f, 1.6466383934020996f, -0.004752100445330143f, 3.841541290283203f, -1.102203607559204f, 2.0588653087615967f, -2.696852684020996f, 2.0163800716400146f, -0.9354190230369568f, 1.9738948345184326f],
            Run(new Sgd(0.1f, momentum: 0.9f, weightDecay: 0.01f)));
    }

    [Fact]
    public void Sgd_with_nesterov_momentum_matches_pytorch()
    {
        AssertClose([-0.22776001691818237f, -1.0085159540176392f, 1.7618238925933838f, -0.0033080000430345535f, 3.7514078617095947f, -0.9981000423431396f, 1.7409920692443848f, -2.492891788482666f, 1.4805760383605957f, -0.6126840114593506f, 1.2201600074768066f],
            Run(new Sgd(0.05f, momentum: 0.8f, nesterov: true)));
    }

    [Fact]
    public void AdamW_matches_pytorch()
    {
        AssertClose([0.47062113881111145f, -1.2203961610794067f, 1.9701712131500244f, -0.029228825122117996f, 3.5281789302825928f, -0.779003918170929f, 1.0289288759231567f, -2.0286288261413574f, 0.27915385365486145f, 0.0957336351275444f, -0.47062113881111145f],
            Run(new AdamW(0.01f, 0.9f, 0.999f, 1e-8f, 0.01f)));
    }

    [Theory]
    [InlineData("sgd")]
    [InlineData("momentum")]
    [InlineData("adamw")]
    public void Parallel_chunked_step_equals_element_by_element_step(string kind)
    {
        // 2^21 + 13 elements: large enough for the parallel path, with a ragged SIMD tail.
        const int n = (1 << 21) + 13;
        var rng = new Random(7);
        var w = new float[n];
        var g = new float[n];
        for (int i = 0; i < n; i++)
        {
            w[i] = (float)(rng.NextDouble() - 0.5);
            g[i] = (float)(rng.NextDouble() - 0.5);
        }
        IOptimizer Make() => kind switch
        {
            "sgd" => new Sgd(0.01f, weightDecay: 0.1f),
            "momentum" => new Sgd(0.01f, momentum: 0.9f),
            _ => new AdamW(0.001f),
        };
        var big = (float[])w.Clone();
        var bigOpt = Make();
        bigOpt.Step(big, g);
        bigOpt.Step(big, g);
        // The same update applied to small slices (sequential path) must agree bit for bit.
        var small = (float[])w.Clone();
        const int slice = 1000;
        for (int s = 0; s < n; s += slice)
        {
            int len = Math.Min(slice, n - s);
            var opt = Make();
            var ws = small.AsSpan(s, len).ToArray();
            var gs = g.AsSpan(s, len).ToArray();
            opt.Step(ws, gs);
            opt.Step(ws, gs);
            ws.CopyTo(small.AsSpan(s, len));
        }
        Assert.Equal(small, big);
    }

    [Fact]
    public void Clipping_scales_to_the_maximum_norm_and_reports_the_original()
    {
        float[] g = [3f, 4f, 0f, 0f];
        float norm = GradientClipping.ClipByGlobalNorm(g, 1f);
        Assert.Equal(5f, norm, 5);
        Assert.Equal(0.6f, g[0], 5);
        Assert.Equal(0.8f, g[1], 5);
        float[] small = [0.3f, 0.4f];
        Assert.Equal(0.5f, GradientClipping.ClipByGlobalNorm(small, 1f), 5);
        Assert.Equal([0.3f, 0.4f], small);
    }

    [Fact]
    public void Bad_hyper_parameters_are_refused_with_the_name_of_the_setting()
    {
        Assert.Equal("learningRate", Assert.Throws<ArgumentOutOfRangeException>(() => new Sgd(float.NaN)).ParamName);
        Assert.Equal("momentum", Assert.Throws<ArgumentOutOfRangeException>(() => new Sgd(0.1f, momentum: 1f)).ParamName);
        Assert.Equal("beta2", Assert.Throws<ArgumentOutOfRangeException>(() => new AdamW(beta2: 1f)).ParamName);
        Assert.Throws<ArgumentException>(() => new Sgd(0.1f).Step(new float[3], new float[2]));
    }
}
