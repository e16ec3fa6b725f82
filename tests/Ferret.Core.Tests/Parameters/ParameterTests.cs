using Ferret.Core.Parameters;
using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;

namespace Ferret.Core.Tests.Parameters;

public class ParameterTests
{
    private static ParameterLayout Layout(params long[] sizes) =>
        new(sizes.Select((s, i) => ($"t{i}", (IReadOnlyList<long>)new[] { s })));

    [Fact]
    public void Layout_lays_tensors_end_to_end_in_order()
    {
        var layout = new ParameterLayout([("a", new long[] { 2, 3 }), ("b", new long[] { 4 })]);
        Assert.Equal(10, layout.TotalLength);
        Assert.Equal(6, layout["b"].Offset);
        var flat = Enumerable.Range(0, 10).Select(i => (float)i).ToArray();
        Assert.Equal([6f, 7f, 8f, 9f], layout.Slice(flat.AsSpan(), "b").ToArray());
    }

    [Fact]
    public void Layout_refuses_duplicates_and_bad_shapes_naming_the_tensor()
    {
        Assert.Contains("'a' appears twice", Assert.Throws<ArgumentException>(() => new ParameterLayout([("a", new long[] { 1 }), ("a", new long[] { 1 })])).Message);
        Assert.Contains("'w'", Assert.Throws<ArgumentException>(() => new ParameterLayout([("w", new long[] { 3, 0 })])).Message);
    }

    [Fact]
    public void Threshold_is_floor_of_nine_tenths_of_the_median()
    {
        Assert.Equal(9, ParameterBlocks.Threshold([10, 1, 100]));
        // Even count: the mean of the two middle sizes, (10 + 20) / 2 = 15, floor(13.5) = 13.
        Assert.Equal(13, ParameterBlocks.Threshold([10, 20, 1, 100]));
    }

    [Fact]
    public void A_new_block_starts_when_the_next_tensor_would_pass_the_threshold()
    {
        // Median of [4, 4, 4, 20, 2] is 4: threshold 3. Every tensor of 4 or more stands alone;
        // the trailing 2 joins nothing because the block before it holds 20.
        var blocks = ParameterBlocks.Partition(Layout(4, 4, 4, 20, 2));
        Assert.Equal([4L, 4, 4, 20, 2], blocks.Blocks.Select(b => b.Length));
        // Median 10, threshold 9: 3 + 3 + 3 = 9 fits, the fourth 3 starts a new block.
        var merged = ParameterBlocks.Partition(Layout(3, 3, 3, 3, 10, 10, 10, 10, 10));
        Assert.Equal([9L, 3, 10, 10, 10, 10, 10], merged.Blocks.Select(b => b.Length));
        Assert.Equal(3, merged[0].TensorCount);
        Assert.Equal(9, merged[1].Offset);
        Assert.Equal(merged.TotalLength, merged.Blocks.Sum(b => b.Length));
    }

    [Fact]
    public void Stored_ranges_must_tile_the_layout_on_tensor_boundaries()
    {
        var layout = Layout(4, 4, 8);
        var ok = ParameterBlocks.FromRanges(layout, [(0, 8), (8, 8)]);
        Assert.Equal(2, ok[0].TensorCount);
        Assert.Contains("inside a tensor", Assert.Throws<ArgumentException>(() => ParameterBlocks.FromRanges(layout, [(0, 6), (6, 10)])).Message);
        Assert.Contains("cover 8 of 16", Assert.Throws<ArgumentException>(() => ParameterBlocks.FromRanges(layout, [(0, 8)])).Message);
        Assert.Contains("expected it to start at 8", Assert.Throws<ArgumentException>(() => ParameterBlocks.FromRanges(layout, [(0, 8), (4, 12)])).Message);
    }

    [Fact]
    public void Fingerprint_is_sha256_of_little_endian_float32_bytes()
    {
        // hashlib.sha256(struct.pack('<3f', 1.0, -2.5, 0.1)).hexdigest()
        Assert.Equal("2f9cc761bc2594fa578868daeedc59b0fc115513fae3e5dc09c4e86e50b8aaf6", ModelFingerprint.Compute([1.0f, -2.5f, 0.1f]));
        var big = new float[3_000_000];
        big[2_999_999] = 1;
        Assert.NotEqual(ModelFingerprint.Compute(new float[3_000_000]), ModelFingerprint.Compute(big));
    }

    [Property(MaxTest = 60)]
    public Property Incremental_fingerprint_equals_the_fingerprint_of_the_concatenation(int seed, ushort lengthShort, byte[] cutBytes)
    {
        int length = lengthShort % 5000;
        var rng = new Random(seed);
        var flat = new float[length];
        for (int i = 0; i < length; i++)
            flat[i] = (float)(rng.NextDouble() - 0.5);
        var cuts = (cutBytes ?? []).Select(b => length == 0 ? 0 : b * length / 256).Append(0).Append(length).Distinct().Order().ToArray();
        using var fingerprint = new ModelFingerprint.Incremental();
        for (int i = 1; i < cuts.Length; i++)
            fingerprint.Append(flat.AsSpan(cuts[i - 1], cuts[i] - cuts[i - 1]));
        return (fingerprint.Count == length && fingerprint.Finish() == ModelFingerprint.Compute(flat))
            .ToProperty().Label($"{cuts.Length - 1} pieces of {length} values");
    }

    [Fact]
    public void Incremental_fingerprint_spans_pieces_larger_than_its_hash_chunk()
    {
        // Pieces of 1.5 Mi values cross the 1 Mi-value chunk the hash is fed in.
        var flat = new float[3 << 20];
        for (int i = 0; i < flat.Length; i++)
            flat[i] = i * 1e-3f;
        using var fingerprint = new ModelFingerprint.Incremental();
        fingerprint.Append(flat.AsSpan(0, 3 << 19));
        fingerprint.Append(flat.AsSpan(3 << 19));
        Assert.True(fingerprint.Finish() == ModelFingerprint.Compute(flat), "two 1.5 Mi pieces hash like the whole 3 Mi vector");
        Assert.Throws<ObjectDisposedException>(() => fingerprint.Append([1f]));
    }

    [Fact]
    public void Layout_and_blocks_of_a_model_past_two_to_the_31_parameters_keep_long_offsets()
    {
        // LLaMA2-7B's tensors: 32 layers of q, k, v, o (4096 x 4096), gate, up, down (11008 x 4096), two norms; embeddings and head.
        var tensors = new List<(string, IReadOnlyList<long>)> { ("embed", new long[] { 32000, 4096 }) };
        for (int l = 0; l < 32; l++)
        {
            foreach (var p in new[] { "q", "k", "v", "o" })
                tensors.Add(($"l{l}.{p}", new long[] { 4096, 4096 }));
            foreach (var p in new[] { "gate", "up", "down" })
                tensors.Add(($"l{l}.{p}", new long[] { 11008, 4096 }));
            tensors.Add(($"l{l}.norm1", new long[] { 4096 }));
            tensors.Add(($"l{l}.norm2", new long[] { 4096 }));
        }
        tensors.Add(("norm", new long[] { 4096 }));
        tensors.Add(("head", new long[] { 32000, 4096 }));
        var layout = new ParameterLayout(tensors);
        Assert.True(layout.TotalLength == 6_738_415_616L, $"LLaMA2-7B has 6,738,415,616 parameters; the layout counts {layout.TotalLength}");
        Assert.True(layout["head"].Offset == 6_738_415_616L - (32000L * 4096), $"the head starts past 2^32 elements, at {layout["head"].Offset}");
        var blocks = ParameterBlocks.Partition(layout);
        Assert.True(blocks.Blocks[^1].End == layout.TotalLength, "the blocks tile the whole vector");
        var again = ParameterBlocks.FromRanges(layout, blocks.Blocks.Select(b => (b.Offset, b.Length)).ToArray());
        Assert.True(again.Blocks.SequenceEqual(blocks.Blocks), "stored ranges past 2^31 rebuild the same partition");
        Assert.Throws<ArgumentException>(() => layout.Slice(new float[16], "head"));
    }
}
