using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Options;

namespace Ferret.Coordinator.Security;

/// <summary>
/// Every REST body is bounded (<see cref="CoordinatorOptions.MaxRequestBodyBytes"/>): a declared length past it
/// is answered 413 before a byte is read, and a chunked body stops being read there. The hub's messages are
/// bounded by SignalR's own limit.
/// </summary>
public sealed class RequestBodyLimit(IOptions<CoordinatorOptions> options)
{
    public async Task InvokeAsync(HttpContext context, Func<Task> next)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(next);
        if (!context.Request.Path.StartsWithSegments("/api", StringComparison.Ordinal))
        {
            await next().ConfigureAwait(false);
            return;
        }
        long limit = options.Value.MaxRequestBodyBytes;
        if (context.Request.ContentLength > limit)
        {
            context.Response.StatusCode = StatusCodes.Status413PayloadTooLarge;
            await context.Response.WriteAsync($"Request body of {context.Request.ContentLength} bytes exceeds {limit}.").ConfigureAwait(false);
            return;
        }
        if (context.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } feature)
            feature.MaxRequestBodySize = limit;
        else
            context.Request.Body = new BoundedStream(context.Request.Body, limit);
        await next().ConfigureAwait(false);
    }

    /// <summary>A read-only view of a body that fails like Kestrel does once more than the limit has been read.</summary>
    private sealed class BoundedStream(Stream inner, long limit) : Stream
    {
        private long _read;

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => _read; set => throw new NotSupportedException(); }

        public override int Read(byte[] buffer, int offset, int count) => Count(inner.Read(buffer, offset, count));

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
            Count(await inner.ReadAsync(buffer, cancellationToken).ConfigureAwait(false));

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        private int Count(int n)
        {
            _read += n;
            if (_read > limit)
                throw new BadHttpRequestException($"Request body exceeds {limit} bytes.", StatusCodes.Status413PayloadTooLarge);
            return n;
        }

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
