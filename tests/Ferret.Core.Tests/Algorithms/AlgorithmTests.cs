using Ferret.Core.Algorithms;
using Ferret.Core.Packets;
using Ferret.Core.Parameters;

namespace Ferret.Core.Tests.Algorithms;

public class AlgorithmTests
{
    private const int Clients = 4;

    private static ParameterLayout Layout() => new([("a", new long[] { 8, 5 }), ("b", new long[] { 60 }), ("c", new long[] { 9, 9 })]);

    internal sealed class Federation
    {
        public Federation(string algorithm, Action<AlgorithmSettings> tune, int rounds)
        {
            Layout = Layout();
            Blocks = ParameterBlocks.Partition(Layout);
            var settings = FederatedAlgorithms.ReferenceSettings(algorithm);
            tune(settings);
            Descriptor = ExperimentDescriptor.Create("exp", algorithm, settings, 2025, Blocks, "fp", rounds, 1.0);
            int n = (int)Layout.TotalLength;
            Global = new float[n];
            var target = QuadraticModel.Vector(n, 1, 2.0);
            var curvature = QuadraticModel.Vector(n, 2, 1.0).Select(x => 1.0f + x).ToArray();
            Coordinator = FederatedAlgorithms.Create(Descriptor, Blocks);
            for (int c = 0; c < Clients; c++)
            {
                var own = target.Zip(QuadraticModel.Vector(n, 10 + c, 0.2), (t, e) => t + e).ToArray();
                Models.Add(new QuadraticModel(new float[n], own, curvature, 100 + (10 * c)));
                Algorithms.Add(FederatedAlgorithms.Create(Descriptor, Blocks));
            }
            Reference = new QuadraticModel(new float[n], target, curvature, 1);
        }

        public ParameterLayout Layout { get; }

        public ParameterBlocks Blocks { get; }

        public ExperimentDescriptor Descriptor { get; }

        public float[] Global { get; }

        public IFederatedAlgorithm Coordinator { get; }

        public List<QuadraticModel> Models { get; } = [];

        public List<IFederatedAlgorithm> Algorithms { get; } = [];

        public QuadraticModel Reference { get; }

        public float Loss => Reference.GlobalLoss(Global);

        /// <summary>One round: every client trains from the global model, the coordinator aggregates, everyone applies.</summary>
        public GlobalUpdate Round(int round)
        {
            var packets = new List<ClientUpdate>();
            for (int c = 0; c < Clients; c++)
            {
                Global.CopyTo(Models[c].Parameters);
                var packet = Algorithms[c].Train(round, Models[c], new Random((round * 100) + c));
                Assert.Equal(Global, Models[c].Parameters.ToArray());
                // Packets cross the wire as MessagePack.
                var received = Wire.Deserialize<ClientUpdate>(Wire.Serialize(packet));
                var verdict = Coordinator.Check(received, round);
                Assert.True(verdict.Accepted, verdict.Reason);
                packets.Add(received);
            }
            var update = Wire.Deserialize<GlobalUpdate>(Wire.Serialize(Coordinator.Aggregate(round, packets, [])));
            Coordinator.Apply(update, Global);
            for (int c = 0; c < Clients; c++)
            {
                Global.CopyTo(Models[c].Parameters);
            }
            return update;
        }
    }

    public static TheoryData<string> Names => new(FederatedAlgorithms.Names);

    internal static void Tune(string algorithm, AlgorithmSettings s)
    {
        switch (algorithm)
        {
            case FederatedAlgorithms.Ferret:
                s.LocalSteps = 5;
                s.MicroBatches = 2;
                s.LocalLearningRate = 20;
                s.CandidateSeeds = 64;
                s.ServerLearningRate = 1.5;
                break;
            case FederatedAlgorithms.FedAvg:
                s.LocalSteps = 5;
                s.MicroBatches = 1;
                s.LocalLearningRate = 20;
                break;
            case FederatedAlgorithms.FedZo:
                s.LocalSteps = 40;
                s.LocalLearningRate = 0.3;
                s.ZerothOrderEpsilon = 1e-3;
                break;
            case FederatedAlgorithms.FedKSeed:
                s.LocalSteps = 40;
                s.CandidateSeeds = 256;
                s.LocalLearningRate = 0.3;
                s.ZerothOrderEpsilon = 1e-3;
                break;
        }
    }

    [Theory]
    [MemberData(nameof(Names))]
    public void Every_algorithm_lowers_the_federated_loss(string algorithm)
    {
        var f = new Federation(algorithm, s => Tune(algorithm, s), rounds: 12);
        float initial = f.Loss;
        for (int r = 1; r <= 12; r++)
            f.Round(r);
        Assert.True(f.Loss < 0.7f * initial, $"{algorithm}: loss {initial} -> {f.Loss}");
    }

    [Fact]
    public void Ferret_halves_the_loss_within_a_few_rounds_and_every_participant_holds_the_same_model()
    {
        var f = new Federation(FederatedAlgorithms.Ferret, s => Tune(FederatedAlgorithms.Ferret, s), rounds: 6);
        float initial = f.Loss;
        var client = new float[f.Global.Length];
        for (int r = 1; r <= 6; r++)
        {
            var update = f.Round(r);
            f.Algorithms[2].Apply(update, client);
            Assert.Equal(ModelFingerprint.Compute(f.Global), ModelFingerprint.Compute(client));
        }
        Assert.True(f.Loss < 0.5f * initial, $"loss {initial} -> {f.Loss}");
    }

    [Fact]
    public void Ferret_sends_a_few_bytes_per_seed_and_block()
    {
        var f = new Federation(FederatedAlgorithms.Ferret, s => Tune(FederatedAlgorithms.Ferret, s), rounds: 1);
        var packet = (FerretUpdate)f.Algorithms[0].Train(1, f.Models[0], new Random(1));
        var bytes = Wire.Serialize<ClientUpdate>(packet);
        // Six bytes a seed (uint16 index, float32 gamma) plus a few per block and the envelope.
        Assert.InRange(bytes.Length, 6 * packet.Gammas.Length, 96 + (6 * packet.Gammas.Length) + (6 * 3));
        var full = Wire.Serialize<ClientUpdate>(new FullDeltaUpdate { ExperimentId = "exp", Round = 1, SampleCount = 1, Delta = new float[f.Global.Length] });
        Assert.InRange(full.Length, 4 * f.Global.Length, (4 * f.Global.Length) + 64);
    }

    private static FerretUpdate GoodPacket(Federation f) => (FerretUpdate)f.Algorithms[0].Train(1, f.Models[0], new Random(3));

    public static TheoryData<string, string> BadPackets => new()
    {
        { "experiment", "not 'exp'" },
        { "round", "round 2 is open" },
        { "seed", "outside [0, 64)" },
        { "block", "outside [0," },
        { "duplicate", "appears twice" },
        { "missing-block", "carries" },
        { "nan", "not finite" },
        { "absurd", "exceeds the bound" },
        { "lengths", "differ in length" },
        { "samples", "sample count" },
    };

    [Theory]
    [MemberData(nameof(BadPackets))]
    public void Bad_ferret_packets_are_rejected_with_a_reason(string defect, string reason)
    {
        var f = new Federation(FederatedAlgorithms.Ferret, s => Tune(FederatedAlgorithms.Ferret, s), rounds: 3);
        var p = GoodPacket(f);
        int round = 1;
        switch (defect)
        {
            case "experiment": p.ExperimentId = "other"; break;
            case "round": round = 2; break;
            case "seed": p.SeedIndices[0] = 64; break;
            case "block": p.Blocks[0] = 99; break;
            case "duplicate": p.SeedIndices[1] = p.SeedIndices[0]; break;
            case "missing-block":
                p.SeedIndices = p.SeedIndices.Where((_, i) => p.Blocks[i] != 0).ToArray();
                p.Gammas = p.Gammas.Where((_, i) => p.Blocks[i] != 0).ToArray();
                p.Blocks = p.Blocks.Where(b => b != 0).ToArray();
                break;
            case "nan": p.Gammas[3] = float.NaN; break;
            case "absurd": p.Gammas[3] = 1e30f; break;
            case "lengths": p.Gammas = p.Gammas[1..]; break;
            case "samples": p.SampleCount = 0; break;
        }
        var verdict = f.Coordinator.Check(p, round);
        Assert.False(verdict.Accepted, "expected false: verdict.Accepted");
        Assert.Contains(reason, verdict.Reason);
    }

    [Fact]
    public void A_packet_of_another_algorithm_is_rejected()
    {
        var f = new Federation(FederatedAlgorithms.Ferret, s => Tune(FederatedAlgorithms.Ferret, s), rounds: 1);
        var verdict = f.Coordinator.Check(new FullDeltaUpdate { ExperimentId = "exp", Round = 1, SampleCount = 1 }, 1);
        Assert.Contains("not a Ferret packet", verdict.Reason);
    }

    [Fact]
    public void Seed_pool_state_survives_export_and_import()
    {
        var f = new Federation(FederatedAlgorithms.Ferret, s =>
        {
            Tune(FederatedAlgorithms.Ferret, s);
            s.ServerMomentum = 0.5;
        }, rounds: 3);
        f.Round(1);
        var restarted = FederatedAlgorithms.Create(f.Descriptor, f.Blocks);
        restarted.ImportState(f.Coordinator.ExportState());
        var packets = new List<ClientUpdate> { GoodPacket(f) };
        var a = (SeedCoefficientsUpdate)f.Coordinator.Aggregate(2, packets, []);
        var b = (SeedCoefficientsUpdate)restarted.Aggregate(2, packets, []);
        Assert.Equal(a.Coefficients, b.Coefficients);
    }

    [Fact]
    public void Descriptor_round_trips_and_bad_settings_name_the_field()
    {
        var layout = Layout();
        var d = ExperimentDescriptor.Create("e1", "ferret", new AlgorithmSettings(), 42, ParameterBlocks.Partition(layout), "abc", 12, 0.05);
        var back = Wire.Deserialize<ExperimentDescriptor>(Wire.Serialize(d));
        Assert.Equal(d.CandidateSeeds, back.CandidateSeeds);
        Assert.Equal(ParameterBlocks.Partition(layout).Count, back.Blocks(layout).Count);
        Assert.Contains("ServerMomentum", Assert.Throws<ArgumentException>(() => new AlgorithmSettings { ServerMomentum = 1.5 }.Validate()).Message);
        Assert.Contains("'Algorithm' = 'sgd'", Assert.Throws<ArgumentException>(() => new ExperimentDescriptor { Id = "x", Algorithm = "sgd" }.Validate()).Message);
        Assert.Throws<InvalidDataException>(() => Wire.Deserialize<ExperimentDescriptor>(new byte[] { 0xc1, 0x00 }));
    }
}
