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
            "huggingface" => t.Files.Contains("tokenizer.json")
                ? HuggingFaceTokenizer.Load(Path.Combine(package.Directory, "tokenizer.json"), t.VocabSize, t.BosTokenId, t.EosTokenId, t.PadTokenId)
                : throw new InvalidDataException($"'{package.Directory}' describes a Hugging Face tokenizer without tokenizer.json."),
            "sentencepiece" => t.Files.Contains("tokenizer.model")
                ? SentencePieceModelTokenizer.Load(Path.Combine(package.Directory, "tokenizer.model"), t.VocabSize, t.BosTokenId, t.EosTokenId, t.PadTokenId)
                : throw new InvalidDataException($"'{package.Directory}' describes a SentencePiece tokenizer without tokenizer.model."),
            _ => throw new NotSupportedException($"'{package.Directory}' uses an unknown tokenizer kind '{t.Kind}'."),
        };
    }
}
