using System.Text.Json.Nodes;

namespace Ferret.Onnx.Checkpoints;

/// <summary>
/// The built-in byte tokenizer (UTF-8 byte b is id b; BOS, EOS and PAD above 255) written as Hugging Face
/// tokenizer files: a byte-level BPE <c>tokenizer.json</c> with the 256 byte symbols as its vocabulary and
/// no merges, so <c>PreTrainedTokenizerFast</c> (and Ferret.NET's own tokenizer.json reader) encode text to
/// exactly the ids the byte tokenizer gives.
/// </summary>
public static class ByteTokenizerFiles
{
    public const string Bos = "<s>";
    public const string Eos = "</s>";
    public const string Pad = "<pad>";

    /// <summary>GPT-2's reversible byte-to-character map: printable bytes map to themselves, the rest above U+0100.</summary>
    public static string[] ByteSymbols()
    {
        var printable = Enumerable.Range('!', '~' - '!' + 1).Concat(Enumerable.Range('¡', '¬' - '¡' + 1)).Concat(Enumerable.Range('®', 'ÿ' - '®' + 1)).ToHashSet();
        var symbols = new string[256];
        int next = 0;
        for (int b = 0; b < 256; b++)
            symbols[b] = printable.Contains(b) ? ((char)b).ToString() : ((char)(256 + next++)).ToString();
        return symbols;
    }

    /// <summary>Writes tokenizer.json, tokenizer_config.json and special_tokens_map.json into <paramref name="directory"/>.</summary>
    public static IReadOnlyList<string> Write(string directory, int bosId, int eosId, int padId, int maxLength)
    {
        var vocab = new JsonObject();
        var symbols = ByteSymbols();
        for (int b = 0; b < 256; b++)
            vocab[symbols[b]] = b;
        static JsonObject Added(int id, string content) => new()
        {
            ["id"] = id,
            ["content"] = content,
            ["single_word"] = false,
            ["lstrip"] = false,
            ["rstrip"] = false,
            ["normalized"] = false,
            ["special"] = true,
        };
        static JsonObject ByteLevel(bool prefix, bool regex) => new() { ["type"] = "ByteLevel", ["add_prefix_space"] = prefix, ["trim_offsets"] = true, ["use_regex"] = regex };
        var tokenizer = new JsonObject
        {
            ["version"] = "1.0",
            ["truncation"] = null,
            ["padding"] = null,
            ["added_tokens"] = new JsonArray(Added(bosId, Bos), Added(eosId, Eos), Added(padId, Pad)),
            ["normalizer"] = null,
            ["pre_tokenizer"] = ByteLevel(false, false),
            ["post_processor"] = null,
            ["decoder"] = ByteLevel(true, true),
            ["model"] = new JsonObject
            {
                ["type"] = "BPE",
                ["dropout"] = null,
                ["unk_token"] = null,
                ["continuing_subword_prefix"] = null,
                ["end_of_word_suffix"] = null,
                ["fuse_unk"] = false,
                ["byte_fallback"] = false,
                ["ignore_merges"] = false,
                ["vocab"] = vocab,
                ["merges"] = new JsonArray(),
            },
        };
        var config = new JsonObject
        {
            ["tokenizer_class"] = "PreTrainedTokenizerFast",
            ["bos_token"] = Bos,
            ["eos_token"] = Eos,
            ["pad_token"] = Pad,
            ["model_max_length"] = maxLength,
            ["clean_up_tokenization_spaces"] = false,
        };
        var special = new JsonObject { ["bos_token"] = Bos, ["eos_token"] = Eos, ["pad_token"] = Pad };
        var written = new List<string>();
        foreach (var (name, json) in new[] { ("tokenizer.json", tokenizer), ("tokenizer_config.json", config), ("special_tokens_map.json", special) })
        {
            File.WriteAllText(Path.Combine(directory, name), json.ToJsonString(HuggingFaceFolder.Indented));
            written.Add(name);
        }
        return written;
    }
}
