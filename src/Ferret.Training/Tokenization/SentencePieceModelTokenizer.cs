using Microsoft.ML.Tokenizers;

namespace Ferret.Training.Tokenization;

/// <summary>
/// A SentencePiece <c>tokenizer.model</c> (LLaMA-2, Mistral, Gemma and friends: BPE or unigram, with byte
/// fallback) through Microsoft.ML.Tokenizers' SentencePiece implementation.
/// </summary>
public sealed class SentencePieceModelTokenizer : TokenizerBase
{
    private readonly SentencePieceTokenizer _sp;

    private SentencePieceModelTokenizer(SentencePieceTokenizer sp, int vocabSize, int bos, int eos, int pad)
        : base(vocabSize, bos, eos, pad) => _sp = sp;

    /// <summary>Loads <paramref name="path"/>; the ids of the model config win over the ones in the file.</summary>
    public static SentencePieceModelTokenizer Load(string path, int vocabSize, int? bosId, int? eosId, int? padId)
    {
        if (!File.Exists(path))
            throw new FileNotFoundException($"Tokenizer file '{path}' does not exist.", path);
        SentencePieceTokenizer sp;
        try
        {
            using var stream = File.OpenRead(path);
            sp = SentencePieceTokenizer.Create(stream, addBeginningOfSentence: false, addEndOfSentence: false, specialTokens: null);
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or FormatException or Google.Protobuf.InvalidProtocolBufferException
            or NotSupportedException or IndexOutOfRangeException)
        {
            throw new InvalidDataException($"'{path}' is not a SentencePiece model: {e.Message}", e);
        }
        int bos = bosId ?? sp.BeginningOfSentenceId;
        int eos = eosId ?? sp.EndOfSentenceId;
        int pad = padId ?? eos;
        foreach (var (name, id) in new[] { ("BOS", bos), ("EOS", eos), ("PAD", pad) })
        {
            if (id < 0 || id >= vocabSize)
                throw new InvalidDataException($"'{path}': the {name} id {id} lies outside the model's vocabulary of {vocabSize}.");
        }
        return new SentencePieceModelTokenizer(sp, vocabSize, bos, eos, pad);
    }

    public override IReadOnlyList<int> Encode(string text) => _sp.EncodeToIds(text, addBeginningOfSentence: false, addEndOfSentence: false, considerPreTokenization: true, considerNormalization: true);

    public override string Decode(IEnumerable<int> ids)
    {
        ArgumentNullException.ThrowIfNull(ids);
        return _sp.Decode(ids.Where(i => !IsSpecial(i)), considerSpecialTokens: false) ?? "";
    }
}
