using Ferret.Training.Runtime;
using Ferret.Training.Tokenization;

namespace Ferret.Training.Data;

/// <summary>One encoded example: token ids and labels (-100 on prompt positions).</summary>
public sealed record EncodedExample(int[] Ids, int[] Labels)
{
    public int Length => Ids.Length;
}

/// <summary>
/// Encodes instruction examples for causal-LM training: <c>[BOS] prompt response [EOS]</c>, prompt positions
/// labelled -100 so the loss covers only the response and EOS. Longer than <see cref="MaxLength"/>: the
/// response keeps up to all tokens not needed by min(prompt, MaxLength / 2) prompt tokens (cut at its end),
/// and the prompt keeps its start in the rest.
/// </summary>
public sealed class ExampleEncoder
{
    public ExampleEncoder(ITokenizer tokenizer, int maxLength)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxLength, 4);
        Tokenizer = tokenizer;
        MaxLength = maxLength;
    }

    public ITokenizer Tokenizer { get; }

    public int MaxLength { get; }

    public EncodedExample Encode(InstructionExample example)
    {
        ArgumentNullException.ThrowIfNull(example);
        if (example.IsPlainText)
            return EncodePlainText(example.Output);
        var prompt = Tokenizer.Encode(PromptTemplate.Format(example));
        var response = Tokenizer.Encode(example.Output);
        int p = 1 + prompt.Count;
        int r = response.Count + 1;
        if (p + r > MaxLength)
        {
            r = Math.Min(r, MaxLength - Math.Min(p, MaxLength / 2));
            p = MaxLength - r;
        }
        var ids = new int[p + r];
        var labels = new int[p + r];
        ids[0] = Tokenizer.BosId;
        for (int i = 1; i < p; i++)
            ids[i] = prompt[i - 1];
        for (int i = 0; i < r; i++)
            ids[p + i] = i < response.Count ? response[i] : Tokenizer.EosId;
        Array.Fill(labels, (int)TokenBatch.IgnoreIndex, 0, p);
        Array.Copy(ids, p, labels, p, r);
        return new EncodedExample(ids, labels);
    }

    /// <summary><c>[BOS] text [EOS]</c>, every position a label; longer texts keep their first <see cref="MaxLength"/> tokens.</summary>
    private EncodedExample EncodePlainText(string text)
    {
        var tokens = Tokenizer.Encode(text);
        int n = Math.Min(tokens.Count + 2, MaxLength);
        var ids = new int[n];
        ids[0] = Tokenizer.BosId;
        for (int i = 1; i < n; i++)
            ids[i] = i - 1 < tokens.Count ? tokens[i - 1] : Tokenizer.EosId;
        return new EncodedExample(ids, (int[])ids.Clone());
    }

    /// <summary>The prompt alone (BOS + template), for generation.</summary>
    public int[] EncodePrompt(InstructionExample example)
    {
        ArgumentNullException.ThrowIfNull(example);
        var prompt = Tokenizer.Encode(PromptTemplate.Format(example));
        int keep = Math.Min(prompt.Count, MaxLength - 1);
        return [Tokenizer.BosId, .. prompt.Take(keep)];
    }

    /// <summary>Right-pads examples into one batch: pad id, attention mask 0 and label -100 on padding.</summary>
    public TokenBatch Collate(IReadOnlyList<EncodedExample> examples)
    {
        ArgumentNullException.ThrowIfNull(examples);
        if (examples.Count == 0)
            throw new ArgumentException("A batch needs at least one example.", nameof(examples));
        int seq = examples.Max(e => e.Length);
        var ids = new long[examples.Count * seq];
        var mask = new long[ids.Length];
        var labels = new long[ids.Length];
        Array.Fill(ids, Tokenizer.PadId);
        Array.Fill(labels, TokenBatch.IgnoreIndex);
        for (int b = 0; b < examples.Count; b++)
        {
            var e = examples[b];
            for (int t = 0; t < e.Length; t++)
            {
                ids[(b * seq) + t] = e.Ids[t];
                mask[(b * seq) + t] = 1;
                labels[(b * seq) + t] = e.Labels[t];
            }
        }
        return new TokenBatch(examples.Count, seq, ids, mask, labels);
    }
}
