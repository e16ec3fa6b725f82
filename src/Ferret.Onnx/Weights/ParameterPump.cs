using Ferret.Core.Parameters;

namespace Ferret.Onnx.Weights;

/// <summary>
/// Moves a source's parameters through fixed-size chunks in flat order: the next chunk is produced while the
/// previous one is consumed (hashed, written), so memory stays at two chunks whatever the model's size.
/// </summary>
public static class ParameterPump
{
    /// <summary>Values per chunk: 16 MiB of float32.</summary>
    public const int ChunkLength = 1 << 22;

    /// <summary>
    /// Feeds every value of <paramref name="source"/>, in flat order, to <paramref name="consume"/> and returns the
    /// model fingerprint of the whole vector. <paramref name="progress"/> hears the values done so far.
    /// </summary>
    public static string Run(IParameterSource source, Action<ReadOnlyMemory<float>>? consume, IProgress<long>? progress = null, int chunkLength = ChunkLength, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(chunkLength);
        var layout = source.Layout;
        int length = (int)Math.Min(chunkLength, layout.TotalLength);
        float[][] buffers = [GC.AllocateUninitializedArray<float>(length), GC.AllocateUninitializedArray<float>(length)];
        using var fingerprint = new ModelFingerprint.Incremental();
        Task pending = Task.CompletedTask;
        int tensor = 0, turn = 0;
        long inTensor = 0, done = 0;
        try
        {
            while (tensor < layout.Tensors.Count)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var buffer = buffers[turn];
                int filled = 0;
                // Fill a chunk across tensor boundaries: small tensors (norms, biases) do not make small writes.
                while (filled < buffer.Length && tensor < layout.Tensors.Count)
                {
                    var t = layout.Tensors[tensor];
                    int n = (int)Math.Min(buffer.Length - filled, t.Length - inTensor);
                    source.Read(tensor, inTensor, buffer.AsMemory(filled, n));
                    filled += n;
                    inTensor += n;
                    if (inTensor == t.Length)
                    {
                        tensor++;
                        inTensor = 0;
                    }
                }
                pending.GetAwaiter().GetResult();
                var chunk = new ReadOnlyMemory<float>(buffer, 0, filled);
                long upTo = done += filled;
                pending = Task.Run(() =>
                {
                    fingerprint.Append(chunk.Span);
                    consume?.Invoke(chunk);
                    progress?.Report(upTo);
                }, CancellationToken.None);
                turn ^= 1;
            }
            pending.GetAwaiter().GetResult();
        }
        catch
        {
            // Never leave the consumer running on a buffer the caller is about to drop; the first failure is reported.
            try
            {
                pending.GetAwaiter().GetResult();
            }
            catch (Exception)
            {
            }
            throw;
        }
        return fingerprint.Finish();
    }
}
