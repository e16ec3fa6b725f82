namespace Ferret.Training.Runtime;

/// <summary>
/// One batch for a causal-LM graph: <c>input_ids</c>, <c>attention_mask</c> and <c>labels</c>, each
/// row-major <c>[Batch, Sequence]</c>. Labels of -100 are ignored by the loss.
/// </summary>
public sealed class TokenBatch
{
    public const long IgnoreIndex = -100;

    public TokenBatch(int batch, int sequence, long[] inputIds, long[] attentionMask, long[] labels)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(batch);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(sequence);
        ArgumentNullException.ThrowIfNull(inputIds);
        ArgumentNullException.ThrowIfNull(attentionMask);
        ArgumentNullException.ThrowIfNull(labels);
        long n = (long)batch * sequence;
        if (inputIds.Length != n || attentionMask.Length != n || labels.Length != n)
            throw new ArgumentException(
                $"A [{batch}, {sequence}] batch needs {n} values per tensor; got input_ids {inputIds.Length}, " +
                $"attention_mask {attentionMask.Length}, labels {labels.Length}.");
        Batch = batch;
        Sequence = sequence;
        InputIds = inputIds;
        AttentionMask = attentionMask;
        Labels = labels;
    }

    public int Batch { get; }

    public int Sequence { get; }

    public long[] InputIds { get; }

    public long[] AttentionMask { get; }

    public long[] Labels { get; }

    public int TokenCount => Batch * Sequence;

    /// <summary>Number of positions whose label counts in the loss (not -100), after the causal shift.</summary>
    public int SupervisedTokenCount
    {
        get
        {
            int count = 0;
            for (int b = 0; b < Batch; b++)
            {
                for (int t = 1; t < Sequence; t++)
                {
                    if (Labels[(b * Sequence) + t] != IgnoreIndex)
                        count++;
                }
            }
            return count;
        }
    }

    /// <summary>Checks token ids against the vocabulary so a bad id fails here, not inside a Gather kernel.</summary>
    public void Validate(int vocabSize)
    {
        for (int i = 0; i < InputIds.Length; i++)
        {
            if ((ulong)InputIds[i] >= (ulong)vocabSize)
                throw new ArgumentException($"input_ids[{i / Sequence}, {i % Sequence}] = {InputIds[i]} is outside the vocabulary [0, {vocabSize}).");
            if (Labels[i] != IgnoreIndex && (ulong)Labels[i] >= (ulong)vocabSize)
                throw new ArgumentException($"labels[{i / Sequence}, {i % Sequence}] = {Labels[i]} is neither -100 nor inside the vocabulary [0, {vocabSize}).");
            if (AttentionMask[i] is not (0 or 1))
                throw new ArgumentException($"attention_mask[{i / Sequence}, {i % Sequence}] = {AttentionMask[i]}; expected 0 or 1.");
        }
    }

    /// <summary>A batch of one sequence whose every next token is supervised (language-modelling style).</summary>
    public static TokenBatch FromSequence(ReadOnlySpan<long> tokens)
    {
        var ids = tokens.ToArray();
        var mask = new long[ids.Length];
        Array.Fill(mask, 1L);
        return new TokenBatch(1, ids.Length, ids, mask, (long[])ids.Clone());
    }
}
