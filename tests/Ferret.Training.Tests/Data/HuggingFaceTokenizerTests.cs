using System.Text.Json.Nodes;
using Ferret.Training.Tokenization;

namespace Ferret.Training.Tests.Data;

public sealed class HuggingFaceTokenizerTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "ferret-tok-" + Guid.NewGuid().ToString("N"));

    public HuggingFaceTokenizerTests() => Directory.CreateDirectory(_dir);

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>GPT-2's reversible byte-to-character map, which byte-level BPE vocabularies are written in.</summary>
    private static Dictionary<int, char> ByteToChar()
    {
        var bytes = Enumerable.Range('!', '~' - '!' + 1).Concat(Enumerable.Range('¡', '¬' - '¡' + 1)).Concat(Enumerable.Range('®', 'ÿ' - '®' + 1)).ToList();
        var chars = bytes.ToList();
        int n = 0;
        for (int b = 0; b < 256; b++)
        {
            if (!bytes.Contains(b))
            {
                bytes.Add(b);
                chars.Add(256 + n++);
            }
        }
        return bytes.Zip(chars).ToDictionary(p => p.First, p => (char)p.Second);
    }

    private string WriteTokenizer(string? modelType = "BPE")
    {
        var map = ByteToChar();
        var vocab = new JsonObject();
        for (int b = 0; b < 256; b++)
            vocab[map[b].ToString()] = b;
        vocab["he"] = 256;
        vocab["ll"] = 257;
        vocab["hell"] = 258;
        vocab["Ġw"] = 259;
        var json = new JsonObject
        {
            ["model"] = new JsonObject { ["type"] = modelType, ["vocab"] = vocab, ["merges"] = new JsonArray("h e", "l l", "he ll", "Ġ w") },
            ["added_tokens"] = new JsonArray(new JsonObject { ["id"] = 260, ["content"] = "<|endoftext|>", ["special"] = true }),
            ["pre_tokenizer"] = new JsonObject { ["type"] = "ByteLevel" },
        };
        var path = Path.Combine(_dir, "tokenizer.json");
        File.WriteAllText(path, json.ToJsonString());
        return path;
    }

    [Fact]
    public void A_sentencepiece_style_tokenizer_json_is_refused_rather_than_misread()
    {
        var path = Path.Combine(_dir, "tokenizer.json");
        File.WriteAllText(path, new JsonObject
        {
            ["model"] = new JsonObject { ["type"] = "BPE", ["vocab"] = new JsonObject { ["▁a"] = 0 }, ["merges"] = new JsonArray() },
            ["pre_tokenizer"] = new JsonObject { ["type"] = "Sequence", ["pretokenizers"] = new JsonArray(new JsonObject { ["type"] = "Metaspace" }) },
        }.ToJsonString());
        var e = Assert.Throws<NotSupportedException>(() => HuggingFaceTokenizer.Load(path, 1, null, null, null));
        Assert.Contains("tokenizer.model", e.Message);
    }

    [Fact]
    public void A_byte_level_bpe_tokenizer_json_applies_its_merges_and_round_trips()
    {
        var tokenizer = HuggingFaceTokenizer.Load(WriteTokenizer(), 261, null, 260, null);
        var ids = tokenizer.Encode("hello world");
        Assert.Equal(258, ids[0]);
        Assert.Contains(259, ids);
        Assert.Equal("hello world", tokenizer.Decode([.. ids, 260]));
        Assert.Equal(260, tokenizer.EosId);
        Assert.Equal("héllo ∑", tokenizer.Decode(tokenizer.Encode("héllo ∑")));
    }

    [Fact]
    public void Unsupported_and_broken_files_name_the_file()
    {
        var path = WriteTokenizer("WordPiece");
        Assert.Contains("'WordPiece'", Assert.Throws<NotSupportedException>(() => HuggingFaceTokenizer.Load(path, 300, null, null, null)).Message);
        File.WriteAllText(path, "{ nope");
        Assert.Contains(path, Assert.Throws<InvalidDataException>(() => HuggingFaceTokenizer.Load(path, 300, null, null, null)).Message);
    }
}
