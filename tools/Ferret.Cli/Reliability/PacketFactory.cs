using Ferret.Core.Algorithms;
using Ferret.Core.Packets;
using Ferret.Core.Parameters;
using Ferret.Core.Projection;

namespace Ferret.Cli.Reliability;

/// <summary>
/// Valid packets of any algorithm without training: a fixed smooth delta projected (Ferret), fixed scalars
/// (FedKSeed) or a constant delta (FedAvg, FedZO). What the load and fuzz harnesses send and mutate.
/// </summary>
internal static class PacketFactory
{
    public static ClientUpdate Valid(ExperimentDescriptor d, int round, int salt = 0)
    {
        ArgumentNullException.ThrowIfNull(d);
        var stats = new TrainingStats { Loss = 2.5 + (salt % 7 * 0.01), ForwardPasses = 4, BackwardPasses = 4, ComputeSeconds = 0.5 };
        switch (d.Algorithm)
        {
            case FederatedAlgorithms.Ferret:
                var blocks = ParameterBlocks.FromLengths(d.BlockLengths);
                var delta = new float[blocks.TotalLength];
                for (int i = 0; i < delta.Length; i++)
                    delta[i] = MathF.Sin(i + salt) * 1e-3f;
                var gammas = Projector.Project(delta, blocks, d.CandidateSeeds, d.Settings.Distribution, new Random((round * 7919) + salt));
                return new FerretUpdate
                {
                    ExperimentId = d.Id,
                    Round = round,
                    SampleCount = 100,
                    Stats = stats,
                    SeedIndices = gammas.SeedIndices,
                    Blocks = gammas.Blocks,
                    Gammas = gammas.Values,
                };
            case FederatedAlgorithms.FedKSeed:
                var random = new Random((round * 31) + salt);
                var seeds = Enumerable.Range(0, d.Settings.CandidateSeeds).OrderBy(_ => random.Next()).Take(Math.Min(32, d.Settings.CandidateSeeds)).Order().ToArray();
                return new SeedScalarsUpdate
                {
                    ExperimentId = d.Id,
                    Round = round,
                    SampleCount = 100,
                    Stats = stats,
                    SeedIndices = seeds,
                    Scalars = seeds.Select(k => (float)(0.01 * Math.Cos(k + salt))).ToArray(),
                };
            default:
                return new FullDeltaUpdate
                {
                    ExperimentId = d.Id,
                    Round = round,
                    SampleCount = 100,
                    Stats = stats,
                    Delta = Enumerable.Repeat(1e-5f * ((salt % 5) + 1), checked((int)d.ParameterCount)).ToArray(),
                };
        }
    }

    public static byte[] ValidBytes(ExperimentDescriptor d, int round, int salt = 0) => Wire.Serialize(Valid(d, round, salt));
}
