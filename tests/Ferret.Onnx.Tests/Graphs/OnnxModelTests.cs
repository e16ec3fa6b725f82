using Ferret.Onnx.Graphs;

namespace Ferret.Onnx.Tests.Graphs;

public class OnnxModelTests
{
    private static Graph Affine(float[] weights)
    {
        var b = new GraphBuilder("affine");
        var x = b.Input("x", ElementType.Float, "batch", 4);
        using (b.Scope("layer"))
        {
            var w = b.Constant(TensorData.FromFloats(weights, 4, 3), "weight");
            b.Output(b.Relu(b.MatMul(x, w)), "y");
        }
        return b.Build();
    }

    private static double[] Run(Graph g)
    {
        using var run = new OrtRunner(g);
        return run.Run(new Dictionary<string, (ElementType, double[], long[])> { ["x"] = (ElementType.Float, [1, 2, 3, 4, -1, -2, -3, -4], [2, 4]) }, "y")["y"];
    }

    [Fact]
    public void A_built_graph_round_trips_through_protobuf_and_runs()
    {
        var weights = Enumerable.Range(0, 12).Select(i => (i - 6) / 4f).ToArray();
        var g = Affine(weights);
        var back = OnnxModel.FromBytes(new OnnxModel(g).ToBytes()).Graph;
        Assert.Equal(g.Nodes.Select(n => n.OpType), back.Nodes.Select(n => n.OpType));
        Assert.Equal("batch", back.Inputs[0].Type.Shape![0].Symbol);
        Assert.Equal(Run(g), Run(back));
        Assert.StartsWith("/layer/", g.Nodes[0].Name, StringComparison.Ordinal);
    }

    [Fact]
    public void Large_constants_go_to_an_external_data_file_and_load_back()
    {
        using var dir = new TempDirectory();
        var weights = Enumerable.Range(0, 12).Select(i => i / 3f).ToArray();
        var g = Affine(weights);
        var path = dir.File("model.onnx");
        new OnnxModel(g).Save(path, externalData: true, externalThresholdBytes: 16);
        Assert.True(File.Exists(path + ".data"), "expected File.Exists(path + \".data\")");
        Assert.True(new FileInfo(path).Length < 1024, "expected new FileInfo(path).Length < 1024");
        var loaded = OnnxModel.Load(path);
        Assert.Equal(weights, loaded.Graph.Initializers.Values.Single(t => t.Count == 12).ToFloats());
        using var fromFile = new OrtRunner(path);
        var y = fromFile.Run(new Dictionary<string, (ElementType, double[], long[])> { ["x"] = (ElementType.Float, [1, 2, 3, 4, -1, -2, -3, -4], [2, 4]) }, "y")["y"];
        Assert.Equal(Run(g), y);
    }

    [Fact]
    public void A_file_that_is_not_onnx_is_refused_with_its_path()
    {
        using var dir = new TempDirectory();
        var path = dir.File("broken.onnx");
        File.WriteAllBytes(path, [0xff, 0xff, 0xff, 0x01, 0x02]);
        Assert.Contains(path, Assert.Throws<InvalidDataException>(() => OnnxModel.Load(path)).Message);
        Assert.Throws<FileNotFoundException>(() => OnnxModel.Load(dir.File("missing.onnx")));
    }

    [Fact]
    public void The_builder_infers_symbolic_shapes()
    {
        var b = new GraphBuilder("shapes");
        var x = b.Input("x", ElementType.Float, "batch", "seq", 8);
        var r = b.Reshape(x, 0, 0, 2, 4);
        Assert.Equal("batch,seq,2,4", string.Join(',', r.Shape!.Select(d => d.ToString())));
        var t = b.Transpose(r, 0, 2, 1, 3);
        Assert.Equal("batch,2,seq,4", string.Join(',', t.Shape!.Select(d => d.ToString())));
        var m = b.MatMul(t, b.Transpose(t, 0, 1, 3, 2));
        Assert.Equal("batch,2,seq,seq", string.Join(',', m.Shape!.Select(d => d.ToString())));
        var s = b.ReduceSum(m, [-1], keepDims: false);
        Assert.Equal("batch,2,seq", string.Join(',', s.Shape!.Select(d => d.ToString())));
        var g = b.Gather(b.Input("table", ElementType.Float, 10, 3), b.Input("ids", ElementType.Int64, "batch", "seq"));
        Assert.Equal("batch,seq,3", string.Join(',', g.Shape!.Select(d => d.ToString())));
    }

    [Fact]
    public void A_graph_reading_an_undefined_value_is_invalid()
    {
        var g = new Graph { Name = "bad" };
        g.Nodes.Add(new Node("Relu", "r", ["nowhere"], ["y"]));
        Assert.Contains("'nowhere'", Assert.Throws<InvalidDataException>(g.Validate).Message);
    }
}
