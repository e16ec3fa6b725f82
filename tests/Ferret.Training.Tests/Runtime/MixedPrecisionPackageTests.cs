using Ferret.Onnx.Export;
using Ferret.Onnx.Graphs;
using Ferret.Onnx.Precision;
using Ferret.Training.Runtime;

namespace Ferret.Training.Tests.Runtime;

/// <summary>
/// <c>ferret export --precision bf16-mixed</c>: the manifest says so, only the training graph changes, and a device
/// without bf16 kernels (this machine's CPU) refuses it with one clear line instead of an ONNX Runtime stack.
/// </summary>
public sealed class MixedPrecisionPackageTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("ferret-bf16-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void A_bf16_mixed_package_marks_its_manifest_casts_only_its_training_graph_and_is_refused_by_name_on_the_cpu()
    {
        var package = ModelExporter.Export(new ModelSource.FromPreset("tiny-llama", 1), Path.Combine(_dir, "bf16"), overwrite: false,
            options: new ExportOptions { Precision = ComputePrecision.Bf16Mixed });
        Assert.True(package.Manifest.Precision == "bf16-mixed", $"the manifest's precision is '{package.Manifest.Precision}', expected bf16-mixed");

        var train = OnnxModel.Load(package.TrainGraphPath).Graph;
        int bf16Products = train.Nodes.Count(n => n.OpType == "Gemm" && train.TypeOf(n.Outputs[0])?.ElementType == ElementType.BFloat16);
        Assert.True(bf16Products > 0, "the training graph's linear layers compute in bf16");
        var eval = OnnxModel.Load(package.EvalGraphPath).Graph;
        Assert.True(eval.Nodes.All(n => n.OpType != "Gemm" || eval.TypeOf(n.Outputs[0])?.ElementType == ElementType.Float), "evaluation stays float32");

        var host = Assert.Throws<NotSupportedException>(() => new OnnxTrainer(package.Layout, package.TrainGraphPath, null, new SessionSettings { IntraOpThreads = 1 }));
        Assert.True(host.Message.Contains(package.TrainGraphPath, StringComparison.Ordinal) && host.Message.Contains("trains on a CUDA GPU only", StringComparison.Ordinal),
            $"the host trainer names the graph and the way out: {host.Message}");
        var resident = Assert.Throws<NotSupportedException>(() => new OnnxTrainer(package.Layout, package.TrainGraphPath, null,
            new SessionSettings { IntraOpThreads = 1, ResidentParameters = true }));
        Assert.True(resident.Message.Contains(package.TrainGraphPath, StringComparison.Ordinal), $"the resident trainer names the graph: {resident.Message}");
    }

    [Fact]
    public void Bf16_mixed_with_layer_recompute_is_refused_before_anything_is_written()
    {
        var target = Path.Combine(_dir, "both");
        var e = Assert.Throws<ArgumentException>(() => ModelExporter.Export(new ModelSource.FromPreset("tiny-gpt2", 1), target, overwrite: false,
            options: new ExportOptions { Precision = ComputePrecision.Bf16Mixed, Recompute = RecomputeMode.Layers }));
        Assert.True(e.Message.Contains("--recompute layers", StringComparison.Ordinal), $"the error names the options: {e.Message}");
        Assert.True(Directory.GetFileSystemEntries(_dir).Length == 0, "nothing is left in the output folder's parent");
    }
}
