using Ferret.Onnx.Artifacts;
using Ferret.Training.Runtime;

namespace Ferret.Training.Verification;

/// <summary>One direction of a gradient check: the analytic and the finite-difference directional derivative.</summary>
public sealed record DirectionCheck(int Direction, double Analytic, double Numeric, double RelativeError);

/// <summary>
/// The outcome of a gradient check over several directions: <see cref="Directions"/> for <c>train.onnx</c>, and for a
/// package exported with recompute also <see cref="Recompute"/>, the layered program's gradient along the same directions.
/// </summary>
public sealed record GradientCheckResult(float Loss, IReadOnlyList<DirectionCheck> Directions, double Epsilon, IReadOnlyList<DirectionCheck>? Recompute = null)
{
    public double MaxRelativeError => Directions.Concat(Recompute ?? []).Max(d => d.RelativeError);
}

/// <summary>
/// Checks an exported training graph end to end: its gradient against central differences of the
/// evaluation graph's loss, <c>(L(w + eps d) - L(w - eps d)) / 2 eps</c> vs <c>&lt;grad, d&gt;</c>, on a fixed
/// batch with padding and ignored labels. The graphs are float32, so each direction mixes the normalised
/// gradient with a random unit vector: the directional derivative stays well above float32 noise while
/// every parameter is still perturbed. A package exported with recompute has a second gradient program (the
/// layer blocks run one by one, <see cref="LayeredProgram"/>); its gradient is checked along the same directions.
/// </summary>
public static class GradientCheck
{
    public static GradientCheckResult Run(ArtifactPackage package, int directions = 4, double epsilon = 1e-3, int seed = 1, int sequence = 24)
    {
        ArgumentNullException.ThrowIfNull(package);
        ArgumentOutOfRangeException.ThrowIfLessThan(directions, 1);
        if (!(epsilon > 0))
            throw new ArgumentOutOfRangeException(nameof(epsilon), epsilon, "The finite-difference step must be positive.");
        using var trainer = new OnnxTrainer(package.Layout, package.TrainGraphPath, package.EvalGraphPath, new SessionSettings());
        var w0 = package.LoadParameters();
        w0.CopyTo(trainer.Parameters, 0);
        var batch = CheckBatch(package.Manifest.Tokenizer.VocabSize, sequence, seed);
        float loss = trainer.ForwardBackward(batch);
        var grad = (float[])trainer.Gradients.Clone();
        var layered = package.Manifest.Recompute is null ? null : LayeredGradient(package, w0, batch);
        double gradNorm = Math.Sqrt(grad.Sum(g => (double)g * g));
        if (!double.IsFinite(gradNorm) || gradNorm == 0)
            throw new InvalidDataException($"The training graph of '{package.Directory}' gives a gradient of norm {gradNorm}.");
        var rng = new Random(seed);
        var results = new List<DirectionCheck>();
        var recompute = new List<DirectionCheck>();
        var d = new double[grad.Length];
        for (int k = 0; k < directions; k++)
        {
            double rNorm = 0;
            for (int i = 0; i < d.Length; i++)
            {
                d[i] = (rng.NextDouble() * 2) - 1;
                rNorm += d[i] * d[i];
            }
            rNorm = Math.Sqrt(rNorm);
            double norm = 0;
            for (int i = 0; i < d.Length; i++)
            {
                d[i] = (grad[i] / gradNorm) + (d[i] / rNorm);
                norm += d[i] * d[i];
            }
            norm = Math.Sqrt(norm);
            double analytic = 0;
            for (int i = 0; i < d.Length; i++)
            {
                d[i] /= norm;
                analytic += grad[i] * d[i];
            }
            double Shifted(double sign)
            {
                for (int i = 0; i < d.Length; i++)
                    trainer.Parameters[i] = (float)(w0[i] + (sign * epsilon * d[i]));
                return trainer.Loss(batch);
            }
            double numeric = (Shifted(1) - Shifted(-1)) / (2 * epsilon);
            results.Add(Compare(k, analytic, numeric));
            if (layered is not null)
            {
                double along = 0;
                for (int i = 0; i < d.Length; i++)
                    along += layered[i] * d[i];
                recompute.Add(Compare(k, along, numeric));
            }
        }
        return new GradientCheckResult(loss, results, epsilon, layered is null ? null : recompute);
    }

    private static DirectionCheck Compare(int direction, double analytic, double numeric) =>
        new(direction, analytic, numeric, Math.Abs(analytic - numeric) / Math.Max(Math.Max(Math.Abs(analytic), Math.Abs(numeric)), 1e-8));

    /// <summary>The layered program's gradient at <paramref name="w0"/>: one accumulation into a zero <c>G</c>, read back tensor by tensor.</summary>
    private static double[] LayeredGradient(ArtifactPackage package, float[] w0, TokenBatch batch)
    {
        using var resident = ResidentTraining.Open(package, new SessionSettings { ResidentParameters = true }, withEvaluation: false);
        resident.Load(w0);
        resident.ForwardBackward(batch);
        var g = new float[w0.Length];
        for (int i = 0; i < package.Layout.Tensors.Count; i++)
        {
            var t = package.Layout.Tensors[i];
            resident.DownloadGradient(i, g.AsSpan(checked((int)t.Offset), checked((int)t.Length)));
        }
        return Array.ConvertAll(g, v => (double)v);
    }

    /// <summary>Two sequences, the second right-padded, with a few ignored labels: every masking path is exercised.</summary>
    public static TokenBatch CheckBatch(int vocabSize, int sequence, int seed)
    {
        var rng = new Random(seed);
        int n = 2 * sequence;
        var ids = new long[n];
        var mask = new long[n];
        var labels = new long[n];
        int padFrom = sequence + (sequence * 2 / 3);
        for (int i = 0; i < n; i++)
        {
            ids[i] = rng.Next(Math.Min(vocabSize, 256));
            mask[i] = i >= padFrom ? 0 : 1;
            labels[i] = i >= padFrom || i % sequence < 3 ? TokenBatch.IgnoreIndex : ids[i];
        }
        return new TokenBatch(2, sequence, ids, mask, labels);
    }
}
