using Ferret.Training.Tokenization;
using Google.Protobuf;

namespace Ferret.Training.Tests.Data;

/// <summary>SentencePiece <c>tokenizer.model</c> files (LLaMA-2 style BPE with byte fallback), written here field by field.</summary>
public sealed class SentencePieceTokenizerTests : IDisposable
{
    private const int Normal = 1, Unknown = 2, Control = 3, Byte = 6;
    private readonly string _dir = Directory.CreateTempSubdirectory("ferret-sp-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>
    /// A BPE model: &lt;unk&gt;, &lt;s&gt;, &lt;/s&gt;, the 256 byte pieces, then pieces whose scores order the merges
    /// that build "▁hello" and "▁world" (sentencepiece_model.proto: ModelProto.pieces = 1, trainer_spec = 2,
    /// normalizer_spec = 3; TrainerSpec.model_type = 3, byte_fallback = 35, unk/bos/eos/pad_id = 40..43).
    /// </summary>
    private string WriteModel()
    {
        var pieces = new List<(string Piece, float Score, int Type)> { ("<unk>", 0, Unknown), ("<s>", 0, Control), ("</s>", 0, Control) };
        pieces.AddRange(Enumerable.Range(0, 256).Select(b => ($"<0x{b:X2}>", 0f, Byte)));
        string[] merged = ["▁", "h", "e", "l", "o", "w", "r", "d", "▁h", "▁he", "▁hel", "▁hell", "▁hello", "▁w", "▁wo", "▁wor", "▁worl", "▁world"];
        pieces.AddRange(merged.Select((p, i) => (p, -(float)i, Normal)));

        using var file = File.Create(Path.Combine(_dir, "tokenizer.model"));
        using var output = new CodedOutputStream(file);
        foreach (var (piece, score, type) in pieces)
        {
            output.WriteTag(1, WireFormat.WireType.LengthDelimited);
            output.WriteBytes(Message(m =>
            {
                m.WriteTag(1, WireFormat.WireType.LengthDelimited);
                m.WriteString(piece);
                m.WriteTag(2, WireFormat.WireType.Fixed32);
                m.WriteFloat(score);
                m.WriteTag(3, WireFormat.WireType.Varint);
                m.WriteInt32(type);
            }));
        }
        output.WriteTag(2, WireFormat.WireType.LengthDelimited);
        output.WriteBytes(Message(m =>
        {
            foreach (var (field, value) in new[] { (3, 2), (4, pieces.Count), (35, 1), (40, 0), (41, 1), (42, 2), (43, -1) })
            {
                m.WriteTag(field, WireFormat.WireType.Varint);
                m.WriteInt32(value);
            }
        }));
        output.WriteTag(3, WireFormat.WireType.LengthDelimited);
        output.WriteBytes(Message(m =>
        {
            m.WriteTag(1, WireFormat.WireType.LengthDelimited);
            m.WriteString("identity");
            foreach (var (field, value) in new[] { (3, true), (4, false), (5, true) })
            {
                m.WriteTag(field, WireFormat.WireType.Varint);
                m.WriteBool(value);
            }
        }));
        return file.Name;
    }

    private static ByteString Message(Action<CodedOutputStream> write)
    {
        using var buffer = new MemoryStream();
        using (var m = new CodedOutputStream(buffer, leaveOpen: true))
            write(m);
        return ByteString.CopyFrom(buffer.ToArray());
    }

    [Fact]
    public void Known_words_merge_to_single_pieces_and_everything_round_trips()
    {
        var path = WriteModel();
        var tokenizer = SentencePieceModelTokenizer.Load(path, 277, null, null, null);
        Assert.Equal((1, 2, 2), (tokenizer.BosId, tokenizer.EosId, tokenizer.PadId));
        const int hello = 259 + 12, world = 259 + 17;
        Assert.Equal([hello, world], tokenizer.Encode("hello world"));
        Assert.Equal("hello world", tokenizer.Decode([1, hello, world, 2]));
    }

    [Fact]
    public void Characters_outside_the_vocabulary_fall_back_to_bytes()
    {
        var tokenizer = SentencePieceModelTokenizer.Load(WriteModel(), 277, null, null, null);
        var ids = tokenizer.Encode("hello é");
        // é is U+00E9: UTF-8 C3 A9, byte pieces sit at 3 + byte.
        Assert.Equal([3 + 0xC3, 3 + 0xA9], ids.TakeLast(2));
        Assert.Equal("hello é", tokenizer.Decode(ids));
    }

    [Fact]
    public void A_file_that_is_not_a_sentencepiece_model_or_ids_outside_the_vocabulary_are_refused_with_the_file_name()
    {
        var junk = Path.Combine(_dir, "junk.model");
        File.WriteAllBytes(junk, [0xff, 0xff, 0xff, 0x01]);
        Assert.Contains("junk.model", Assert.Throws<InvalidDataException>(() => SentencePieceModelTokenizer.Load(junk, 10, null, null, null)).Message);
        var path = WriteModel();
        Assert.Contains("EOS id 999", Assert.Throws<InvalidDataException>(() => SentencePieceModelTokenizer.Load(path, 277, null, 999, null)).Message);
    }
}
