using System.Buffers;
using Ferret.Core.Algorithms;
using Ferret.Core.Packets;
using Ferret.Core.Parameters;
using MessagePack;

namespace Ferret.Core.Tests.Packets;

/// <summary>What a packet must be to pass the door: every reported value finite and bounded, every field present, canonical, within the experiment's shapes.</summary>
public class DoorCheckTests
{
    private static readonly ParameterBlocks Blocks = ParameterBlocks.FromLengths([40, 30, 30]);

    private static ExperimentDescriptor Experiment(string algorithm)
    {
        var settings = FederatedAlgorithms.ReferenceSettings(algorithm);
        settings.CandidateSeeds = algorithm == FederatedAlgorithms.FedKSeed ? 64 : 16;
        return ExperimentDescriptor.Create("exp-door", algorithm, settings, 7, Blocks, "fp", 3, 1.0);
    }

    /// <summary>A valid packet of each algorithm for round 1.</summary>
    private static ClientUpdate Valid(ExperimentDescriptor d) => d.Algorithm switch
    {
        FederatedAlgorithms.Ferret => new FerretUpdate
        {
            ExperimentId = d.Id,
            Round = 1,
            SampleCount = 10,
            Stats = new TrainingStats { Loss = 2.5 },
            SeedIndices = [0, 1, 0, 1, 0, 1],
            Blocks = [0, 0, 1, 1, 2, 2],
            Gammas = [0.1f, -0.2f, 0.3f, 0.1f, 0.2f, 0.3f],
        },
        FederatedAlgorithms.FedKSeed => new SeedScalarsUpdate { ExperimentId = d.Id, Round = 1, SampleCount = 10, Stats = new TrainingStats { Loss = 2.5 }, SeedIndices = [3, 9], Scalars = [0.5f, -0.5f] },
        _ => new FullDeltaUpdate { ExperimentId = d.Id, Round = 1, SampleCount = 10, Stats = new TrainingStats { Loss = 2.5 }, Delta = new float[d.ParameterCount] },
    };

    /// <summary>What the coordinator sees: the bytes decoded at the door with the experiment's bound, then checked.</summary>
    private static PacketVerdict AtTheDoor(ExperimentDescriptor d, ClientUpdate update)
    {
        var bytes = Wire.Serialize(update);
        var decoded = Wire.Deserialize<ClientUpdate>(bytes, PacketLimits.MaxDecodedElements(d, bytes.Length));
        return FederatedAlgorithms.Create(d, Blocks).Check(decoded, 1);
    }

    public static TheoryData<string> Names => new(FederatedAlgorithms.Names);

    public static TheoryData<string, double> NonFiniteLosses()
    {
        var data = new TheoryData<string, double>();
        foreach (var name in FederatedAlgorithms.Names)
        {
            foreach (var loss in new[] { double.PositiveInfinity, double.NegativeInfinity, double.NaN, 1e300 })
                data.Add(name, loss);
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(Names))]
    public void A_valid_packet_of_every_algorithm_passes_and_fits_the_experiments_packet_bound(string algorithm)
    {
        var d = Experiment(algorithm);
        var packet = Valid(d);
        var verdict = AtTheDoor(d, packet);
        Assert.True(verdict.Accepted, verdict.Reason);
        Assert.True(Wire.Serialize(packet).Length <= PacketLimits.MaxPacketBytes(d), $"a valid {algorithm} packet must fit {PacketLimits.MaxPacketBytes(d)} bytes");
    }

    [Fact]
    public void The_largest_valid_ferret_packet_fits_the_bound_and_one_more_seed_per_block_is_refused()
    {
        var d = Experiment(FederatedAlgorithms.Ferret);
        int k = d.Settings.CandidateSeeds;
        var full = new FerretUpdate
        {
            ExperimentId = d.Id,
            Round = 1,
            SampleCount = 10,
            Stats = new TrainingStats { Loss = 1 },
            SeedIndices = [.. Enumerable.Range(0, 3).SelectMany(_ => Enumerable.Range(0, k))],
            Blocks = [.. Enumerable.Range(0, 3).SelectMany(b => Enumerable.Repeat(b, k))],
            Gammas = [.. Enumerable.Repeat(0.5f, 3 * k)],
        };
        Assert.True(AtTheDoor(d, full).Accepted, "a full valid packet passes the door");
        Assert.InRange(Wire.Serialize(full).Length, 1, PacketLimits.MaxPacketBytes(d));
        Assert.Equal(3 * k, PacketLimits.MaxEntries(d));
    }

    [Theory]
    [MemberData(nameof(NonFiniteLosses))]
    public void A_train_loss_that_is_not_finite_or_absurd_is_refused_with_a_reason(string algorithm, double loss)
    {
        var d = Experiment(algorithm);
        var packet = Valid(d);
        packet.Stats.Loss = loss;
        var verdict = AtTheDoor(d, packet);
        Assert.False(verdict.Accepted, $"loss {loss} must not pass the door");
        Assert.Contains("train loss", verdict.Reason);
    }

    [Theory]
    [MemberData(nameof(Names))]
    public void Other_reported_values_are_bounded_too(string algorithm)
    {
        var d = Experiment(algorithm);
        foreach (var (mutate, expected) in new (Action<ClientUpdate>, string)[]
        {
            (p => p.Stats.ComputeSeconds = double.NaN, "compute seconds"),
            (p => p.Stats.ComputeSeconds = -1, "compute seconds"),
            (p => p.Stats.ForwardPasses = -5, "pass counts"),
            (p => p.SampleCount = long.MaxValue, "sample count"),
            (p => p.SampleCount = 0, "sample count"),
        })
        {
            var packet = Valid(d);
            mutate(packet);
            var verdict = AtTheDoor(d, packet);
            Assert.False(verdict.Accepted, $"{expected} mutation must be refused");
            Assert.Contains(expected, verdict.Reason);
        }
    }

    [Fact]
    public void Nil_fields_are_refused_with_their_name_instead_of_throwing()
    {
        var ferret = Experiment(FederatedAlgorithms.Ferret);
        foreach (var (mutate, field) in new (Action<FerretUpdate>, string)[]
        {
            (p => p.Gammas = null!, "Gammas"), (p => p.SeedIndices = null!, "SeedIndices"), (p => p.Blocks = null!, "Blocks"),
        })
        {
            var packet = (FerretUpdate)Valid(ferret);
            mutate(packet);
            Assert.Contains($"'{field}' is nil", AtTheDoor(ferret, packet).Reason);
        }
        var noStats = Valid(ferret);
        noStats.Stats = null!;
        Assert.Contains("no training stats", AtTheDoor(ferret, noStats).Reason);

        var kseed = Experiment(FederatedAlgorithms.FedKSeed);
        var scalars = (SeedScalarsUpdate)Valid(kseed);
        scalars.Scalars = null!;
        Assert.Contains("'Scalars' is nil", AtTheDoor(kseed, scalars).Reason);
        var fedavg = Experiment(FederatedAlgorithms.FedAvg);
        var delta = (FullDeltaUpdate)Valid(fedavg);
        delta.Delta = null!;
        Assert.Contains("'Delta' is nil", AtTheDoor(fedavg, delta).Reason);
    }

    [Fact]
    public void Trailing_bytes_after_a_valid_packet_make_it_non_canonical()
    {
        var d = Experiment(FederatedAlgorithms.Ferret);
        var bytes = Wire.Serialize(Valid(d));
        var padded = bytes.Concat(new byte[] { 0xc0, 0x00, 0x01 }).ToArray();
        var e = Assert.Throws<InvalidDataException>(() => Wire.Deserialize<ClientUpdate>(padded));
        Assert.Contains("3 trailing bytes", e.Message);
        Assert.IsType<FerretUpdate>(Wire.Deserialize<ClientUpdate>(bytes));
    }

    [Fact]
    public void A_63_byte_run_length_bomb_is_refused_without_expanding_it()
    {
        var d = Experiment(FederatedAlgorithms.Ferret);
        // Union tag 0 (Ferret), then the fields; the blocks field claims one run of 2^26 values.
        var buffer = new ArrayBufferWriter<byte>();
        var w = new MessagePackWriter(buffer);
        w.WriteArrayHeader(2);
        w.Write(0);
        w.WriteArrayHeader(8);
        w.Write(1);
        w.Write(d.Id);
        w.Write(1);
        w.Write(10);
        w.WriteArrayHeader(4);
        w.Write(2.5);
        w.Write(0);
        w.Write(0);
        w.Write(0.0);
        w.Write(new byte[] { 0, 0 });
        w.WriteArrayHeader(2);
        w.Write(0);
        w.Write(1 << 26);
        w.Write(new byte[] { 0, 0, 0, 0 });
        w.Flush();
        var bomb = buffer.WrittenSpan.ToArray();
        Assert.True(bomb.Length < 100, $"the bomb is {bomb.Length} bytes");
        long before = GC.GetAllocatedBytesForCurrentThread();
        var e = Assert.Throws<InvalidDataException>(() => Wire.Deserialize<ClientUpdate>(bomb, PacketLimits.MaxDecodedElements(d, bomb.Length)));
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.Contains("out of range", e.Message);
        Assert.True(allocated < 1024 * 1024, $"refusing the bomb allocated {allocated} bytes; expanding it would take 256 MiB");
        Assert.Equal(bomb.Length / 6, PacketLimits.MaxDecodedElements(d, bomb.Length));
    }
}
