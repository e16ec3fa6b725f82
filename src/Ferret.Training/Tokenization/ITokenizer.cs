namespace Ferret.Training.Tokenization;

/// <summary>Text to token ids and back, with the special ids a causal LM's data pipeline needs.</summary>
public interface ITokenizer
{
    int VocabSize { get; }

    int BosId { get; }

    int EosId { get; }

    int PadId { get; }

    /// <summary>Ids of <paramref name="text"/>, without special tokens.</summary>
    IReadOnlyList<int> Encode(string text);

    /// <summary>Text of <paramref name="ids"/>, skipping special tokens.</summary>
    string Decode(IEnumerable<int> ids);
}

/// <summary>A tokenizer's vocabulary size and special ids; subclasses supply the encoding.</summary>
public abstract class TokenizerBase(int vocabSize, int bosId, int eosId, int padId) : ITokenizer
{
    public int VocabSize { get; } = vocabSize;

    public int BosId { get; } = bosId;

    public int EosId { get; } = eosId;

    public int PadId { get; } = padId;

    public abstract IReadOnlyList<int> Encode(string text);

    public abstract string Decode(IEnumerable<int> ids);

    /// <summary>BOS, EOS or PAD: ids decoding leaves out.</summary>
    protected bool IsSpecial(int id) => id == BosId || id == EosId || id == PadId;
}

/// <summary>
/// The built-in byte-level tokenizer: one id per UTF-8 byte (0..255), special ids above. Decoding skips
/// special ids and turns invalid UTF-8 into U+FFFD.
/// </summary>
public sealed class ByteTokenizer : TokenizerBase
{
    public ByteTokenizer(int vocabSize, int bosId, int eosId, int padId)
        : base(vocabSize, bosId, eosId, padId)
    {
        if (vocabSize < 259)
            throw new ArgumentOutOfRangeException(nameof(vocabSize), vocabSize, "A byte tokenizer needs 256 byte ids plus BOS, EOS and PAD.");
        foreach (var (name, id) in new[] { ("bosId", bosId), ("eosId", eosId), ("padId", padId) })
        {
            if (id < 256 || id >= vocabSize)
                throw new ArgumentOutOfRangeException(name, id, $"Special ids of a byte tokenizer lie in [256, {vocabSize}).");
        }
    }

    public override IReadOnlyList<int> Encode(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var bytes = System.Text.Encoding.UTF8.GetBytes(text);
        var ids = new int[bytes.Length];
        for (int i = 0; i < bytes.Length; i++)
            ids[i] = bytes[i];
        return ids;
    }

    public override string Decode(IEnumerable<int> ids)
    {
        ArgumentNullException.ThrowIfNull(ids);
        var bytes = ids.Where(i => i is >= 0 and < 256).Select(i => (byte)i).ToArray();
        return System.Text.Encoding.UTF8.GetString(bytes);
    }
}
