using Ferret.Training.Data;
using Ferret.Training.Runtime;
using Ferret.Training.Tokenization;

namespace Ferret.Training.Tests.Data;

public class TokenizerAndEncoderTests
{
    private static readonly ByteTokenizer Bytes = new(259, 256, 257, 258);

    [Fact]
    public void Byte_tokenizer_round_trips_utf8_and_skips_special_ids()
    {
        var ids = Bytes.Encode("héllo ∑");
        Assert.Equal(System.Text.Encoding.UTF8.GetByteCount("héllo ∑"), ids.Count);
        Assert.Equal("héllo ∑", Bytes.Decode([256, .. ids, 257, 258]));
        Assert.Equal("a\uFFFD", Bytes.Decode([97, 0xC3]));
        Assert.Throws<ArgumentOutOfRangeException>(() => new ByteTokenizer(258, 256, 257, 258));
    }

    [Fact]
    public void Prompt_positions_are_ignored_and_the_response_ends_with_eos()
    {
        var encoder = new ExampleEncoder(Bytes, 512);
        var e = encoder.Encode(new InstructionExample("Reverse the word.", "abc", "cba", "reverse"));
        int promptLength = 1 + System.Text.Encoding.UTF8.GetByteCount(PromptTemplate.Format("Reverse the word.", "abc"));
        Assert.Equal(256, e.Ids[0]);
        Assert.All(e.Labels[..promptLength], l => Assert.Equal(-100, l));
        Assert.Equal(new[] { 'c', 'b', 'a' }.Select(c => (int)c).Append(257), e.Labels[promptLength..]);
        Assert.Equal(e.Ids[promptLength..], e.Labels[promptLength..]);
    }

    [Fact]
    public void Plain_text_has_no_template_and_every_token_is_a_label()
    {
        var encoder = new ExampleEncoder(Bytes, 512);
        var e = encoder.Encode(InstructionExample.PlainText("abc"));
        Assert.Equal([Bytes.BosId, 'a', 'b', 'c', Bytes.EosId], e.Ids);
        Assert.Equal(e.Ids, e.Labels);
        var cut = new ExampleEncoder(Bytes, 4).Encode(InstructionExample.PlainText("abcdef"));
        Assert.Equal([Bytes.BosId, 'a', 'b', 'c'], cut.Ids);
    }

    [Fact]
    public void Long_examples_keep_the_prompt_start_and_some_response()
    {
        var encoder = new ExampleEncoder(Bytes, 64);
        var e = encoder.Encode(new InstructionExample(new string('x', 300), "", new string('y', 200), "long"));
        Assert.Equal(64, e.Length);
        Assert.Equal(32, e.Labels.Count(l => l != -100));
        Assert.Equal((int)'B', e.Ids[1]);
        var shortAnswer = encoder.Encode(new InstructionExample(new string('x', 300), "", "ok", "long"));
        Assert.Equal(64, shortAnswer.Length);
        Assert.Equal(3, shortAnswer.Labels.Count(l => l != -100));
    }

    [Fact]
    public void Collate_pads_right_with_mask_zero_and_ignored_labels()
    {
        var encoder = new ExampleEncoder(Bytes, 512);
        var a = encoder.Encode(new InstructionExample("a", "", "1", "t"));
        var b = encoder.Encode(new InstructionExample("a longer one", "", "22", "t"));
        var batch = encoder.Collate([a, b]);
        Assert.Equal(2, batch.Batch);
        Assert.Equal(b.Length, batch.Sequence);
        int pad = b.Length - a.Length;
        Assert.All(batch.InputIds.Skip(a.Length).Take(pad), id => Assert.Equal(258, id));
        Assert.All(batch.AttentionMask.Skip(a.Length).Take(pad), m => Assert.Equal(0, m));
        Assert.All(batch.Labels.Skip(a.Length).Take(pad), l => Assert.Equal(TokenBatch.IgnoreIndex, l));
        Assert.Equal(b.Length, batch.AttentionMask.Skip(b.Length).Count(m => m == 1));
    }
}
