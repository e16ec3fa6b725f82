using Ferret.Core.Parameters;

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
}
