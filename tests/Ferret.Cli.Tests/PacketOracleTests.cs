using Ferret.Cli.Reliability;
using Ferret.Core.Algorithms;
using Ferret.Core.Packets;
using Ferret.Core.Parameters;

namespace Ferret.Cli.Tests;

/// <summary>The fuzz harness's oracle agrees with the encoder on valid packets and names what is wrong with invalid ones.</summary>
public sealed class PacketOracleTests
{
    private static ExperimentDescriptor Experiment(string algorithm)
    {
        var settings = FederatedAlgorithms.ReferenceSettings(algorithm);
        settings.CandidateSeeds = 32;
        return ExperimentDescriptor.Create("exp-oracle", algorithm, settings, 3, ParameterBlocks.FromLengths([300, 200, 100]), "fp", 2, 1.0);
    }

    public static TheoryData<string> Names => new(FederatedAlgorithms.Names);

    [Theory]
    [MemberData(nameof(Names))]
    public void Valid_packets_of_every_algorithm_pass_and_the_coordinators_checks_agree(string algorithm)
    {
        var d = Experiment(algorithm);
        var oracle = new PacketOracle(d, 1_000_000);
        for (int salt = 0; salt < 4; salt++)
        {
            var packet = PacketFactory.ValidBytes(d, 1, salt);
            Assert.Null(oracle.Judge(packet, 1));
            Assert.True(FederatedAlgorithms.Create(d, ParameterBlocks.FromLengths(d.BlockLengths)).Check(Wire.Deserialize<ClientUpdate>(packet), 1).Accepted, "the untouched packet passes the algorithm's own check");
            Assert.Equal("round", oracle.Judge(packet, 2));
        }
    }

    [Fact]
    public void Invalid_and_non_canonical_packets_are_named()
    {
        var d = Experiment(FederatedAlgorithms.Ferret);
        var oracle = new PacketOracle(d, 1_000_000);
        var valid = (FerretUpdate)PacketFactory.Valid(d, 1);
        Assert.Equal("bytes after the packet", oracle.Judge([.. Wire.Serialize<ClientUpdate>(valid), 0xc0], 1));
        var nan = (FerretUpdate)PacketFactory.Valid(d, 1);
        nan.Stats.Loss = double.NaN;
        Assert.Equal("train loss", oracle.Judge(Wire.Serialize<ClientUpdate>(nan), 1));
        var duplicate = (FerretUpdate)PacketFactory.Valid(d, 1);
        duplicate.SeedIndices[1] = duplicate.SeedIndices[0];
        Assert.Equal("seed or block out of range, or repeated", oracle.Judge(Wire.Serialize<ClientUpdate>(duplicate), 1));
        Assert.StartsWith("not well-formed", oracle.Judge([0x92, 0x00, 0xdc, 0xff, 0xff], 1));
        // A non-minimal integer (the round, 1, written as int32) decodes fine but is not canonical.
        var bytes = Wire.Serialize<ClientUpdate>(valid);
        // [0x92 union, 0x00 tag, 0x98 fields, 0x01 version, 0xaN id..., round]
        int round = 5 + d.Id.Length;
        Assert.Equal((0xa0 | d.Id.Length, 0x01), (bytes[4], bytes[round]));
        Assert.StartsWith("not well-formed", oracle.Judge([.. bytes[..round], 0xd2, 0, 0, 0, 1, .. bytes[(round + 1)..]], 1));
    }
}
