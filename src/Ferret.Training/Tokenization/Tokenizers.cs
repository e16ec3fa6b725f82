using Ferret.Onnx.Artifacts;

namespace Ferret.Training.Tokenization;

/// <summary>Builds the tokenizer an artifact package describes.</summary>
public static class Tokenizers
{
    public static ITokenizer FromPackage(ArtifactPackage package)
    {
        ArgumentNullException.ThrowIfNull(package);
        var t = package.Manifest.Tokenizer;
        return t.Kind switch
        {
            "byte" => new ByteTokenizer(t.VocabSize, t.BosTokenId ?? 256, t.EosTokenId ?? 257, t.PadTokenId ?? 258),
            _ => throw new NotSupportedException(
                $"'{package.Directory}' uses a {t.Kind} tokenizer; this build's data pipeline reads byte-level packages only (export with --tokenizer byte)."),
        };
    }
}
