using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.ML.Tokenizers;

namespace Ferret.Training.Tokenization;

/// <summary>
/// A Hugging Face <c>tokenizer.json</c> of the byte-level BPE kind (GPT-2, LLaMA-3, Qwen and friends),
/// loaded into Microsoft.ML.Tokenizers' BPE implementation.
/// </summary>
public sealed class HuggingFaceTokenizer : TokenizerBase
{
    // GPT-2's pre-tokenisation split, used by byte-level BPE tokenizers.
    private static readonly Regex Gpt2Split = new(@"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+", RegexOptions.Compiled);

    private static readonly string[] PipelineParts = ["pre_tokenizer", "normalizer", "decoder"];

    private readonly BpeTokenizer _bpe;
    private readonly HashSet<int> _special;

    private HuggingFaceTokenizer(BpeTokenizer bpe, HashSet<int> special, int vocabSize, int bos, int eos, int pad)
        : base(vocabSize, bos, eos, pad)
    {
        _bpe = bpe;
        _special = special;
    }

    public static HuggingFaceTokenizer Load(string path, int vocabSize, int? bosId, int? eosId, int? padId)
    {
        if (!File.Exists(path))
            throw new FileNotFoundException($"Tokenizer file '{path}' does not exist.", path);
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(File.ReadAllText(path));
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"'{path}' is not valid JSON: {e.Message}", e);
        }
        using (doc)
        {
            var root = doc.RootElement;
            if (!root.TryGetProperty("model", out var model) || model.ValueKind != JsonValueKind.Object)
                throw new InvalidDataException($"'{path}' has no 'model' object.");
            var type = model.TryGetProperty("type", out var t) ? t.GetString() : null;
            if (type != "BPE")
                throw new NotSupportedException($"'{path}' holds a '{type}' tokenizer model; Ferret.NET reads byte-level BPE tokenizer.json files.");
            if ((model.TryGetProperty("byte_fallback", out var byteFallback) && byteFallback.ValueKind == JsonValueKind.True) || Mentions(root, "Metaspace"))
            {
                throw new NotSupportedException(
                    $"'{path}' is a SentencePiece-style tokenizer (byte fallback, Metaspace); export the model with its tokenizer.model instead.");
            }
            if (!model.TryGetProperty("vocab", out var vocabElement) || vocabElement.ValueKind != JsonValueKind.Object)
                throw new InvalidDataException($"'{path}': 'model.vocab' is missing.");
            var vocab = vocabElement.EnumerateObject().Select(p => KeyValuePair.Create(p.Name, p.Value.GetInt32())).ToList();
            var merges = new List<string>();
            if (model.TryGetProperty("merges", out var mergesElement))
            {
                foreach (var m in mergesElement.EnumerateArray())
                {
                    merges.Add(m.ValueKind switch
                    {
                        JsonValueKind.String => m.GetString()!,
                        JsonValueKind.Array when m.GetArrayLength() == 2 => $"{m[0].GetString()} {m[1].GetString()}",
                        _ => throw new InvalidDataException($"'{path}': a merge is neither \"a b\" nor [\"a\", \"b\"]."),
                    });
                }
            }
            var specials = new Dictionary<string, int>(StringComparer.Ordinal);
            if (root.TryGetProperty("added_tokens", out var added) && added.ValueKind == JsonValueKind.Array)
            {
                foreach (var a in added.EnumerateArray())
                    specials[a.GetProperty("content").GetString()!] = a.GetProperty("id").GetInt32();
            }
            var options = new BpeOptions(vocab)
            {
                Merges = merges,
                ByteLevel = true,
                SpecialTokens = specials,
                PreTokenizer = new RegexPreTokenizer(Gpt2Split, specials),
            };
            var bpe = BpeTokenizer.Create(options);
            int fallback = specials.Count > 0 ? specials.Values.First() : 0;
            return new HuggingFaceTokenizer(bpe, [.. specials.Values], vocabSize, bosId ?? fallback, eosId ?? fallback, padId ?? eosId ?? fallback);
        }
    }

    /// <summary>Whether the pre-tokenizer, normalizer or decoder (or one nested in a sequence) is of this type.</summary>
    private static bool Mentions(JsonElement root, string type)
    {
        static bool Has(JsonElement e, string type) => e.ValueKind switch
        {
            JsonValueKind.Object => e.EnumerateObject().Any(p => (p.Name == "type" && p.Value.ValueKind == JsonValueKind.String && p.Value.GetString() == type) || Has(p.Value, type)),
            JsonValueKind.Array => e.EnumerateArray().Any(x => Has(x, type)),
            _ => false,
        };
        return PipelineParts.Any(k => root.TryGetProperty(k, out var part) && Has(part, type));
    }

    public override IReadOnlyList<int> Encode(string text) => _bpe.EncodeToIds(text, considerPreTokenization: true, considerNormalization: true);

    public override string Decode(IEnumerable<int> ids)
    {
        ArgumentNullException.ThrowIfNull(ids);
        return _bpe.Decode(ids.Where(i => !_special.Contains(i) && !IsSpecial(i))) ?? "";
    }
}
