using Ferret.Core.Algorithms;
using Ferret.Core.Packets;
using Ferret.Core.Parameters;
using Ferret.Core.Projection;

namespace Ferret.Tests;

/// <summary>Well-formed client packets for an experiment, as an edge client would send them (linked into the test projects that need them).</summary>
internal static class TestPackets
{
    /// <summary>A Ferret packet: a smooth fake delta projected onto the experiment's candidate seeds (chosen by <paramref name="seed"/>, default the round).</summary>
    public static byte[] Ferret(ExperimentDescriptor descriptor, int round, string? experimentId = null, int? seed = null)
    {
        var blocks = ParameterBlocks.FromLengths(descriptor.BlockLengths);
        var delta = Enumerable.Range(0, (int)blocks.TotalLength).Select(i => (float)Math.Sin(i) * 1e-3f).ToArray();
        var gammas = Projector.Project(delta, blocks, descriptor.CandidateSeeds, descriptor.Settings.Distribution, new Random(seed ?? round));
        return Wire.Serialize<ClientUpdate>(new FerretUpdate
        {
            ExperimentId = experimentId ?? descriptor.Id,
            Round = round,
            SampleCount = 10,
            Stats = new TrainingStats { Loss = 2.5 },
            SeedIndices = gammas.SeedIndices,
            Blocks = gammas.Blocks,
            Gammas = gammas.Values,
        });
    }

    /// <summary>A FedAvg packet: a full delta over every parameter (megabytes: it has to stream in chunks).</summary>
    public static byte[] FullDelta(ExperimentDescriptor descriptor, int round, float value = 1e-4f) =>
        Wire.Serialize<ClientUpdate>(new FullDeltaUpdate
        {
            ExperimentId = descriptor.Id,
            Round = round,
            SampleCount = 10,
            Stats = new TrainingStats { Loss = 3.0 },
            Delta = Enumerable.Repeat(value, checked((int)descriptor.ParameterCount)).ToArray(),
        });

    /// <summary>Splits a packet into SignalR stream items of at most <paramref name="chunk"/> bytes.</summary>
    public static async IAsyncEnumerable<byte[]> Chunks(byte[] packet, int chunk)
    {
        for (int offset = 0; offset < packet.Length; offset += chunk)
        {
            yield return packet[offset..Math.Min(packet.Length, offset + chunk)];
            await Task.Yield();
        }
    }
}
