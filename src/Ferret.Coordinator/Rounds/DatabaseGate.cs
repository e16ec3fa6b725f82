using Microsoft.Extensions.Options;

namespace Ferret.Coordinator.Rounds;

/// <summary>
/// Bounds how many hub calls talk to the round log at once. The store's calls block their thread, so
/// thousands of clients answering a round together would otherwise hold every thread-pool thread waiting
/// for a database connection, and starve everything else (keep-alives, the Redis backplane). Waiting here
/// holds no thread.
/// </summary>
public sealed class DatabaseGate(IOptions<CoordinatorOptions> options) : IDisposable
{
    private readonly SemaphoreSlim _slots = new(options.Value.DatabaseConcurrency, options.Value.DatabaseConcurrency);

    /// <summary>Waits for a slot; disposing the result frees it.</summary>
    public async ValueTask<Slot> EnterAsync()
    {
        await _slots.WaitAsync().ConfigureAwait(false);
        return new Slot(_slots);
    }

    public void Dispose() => _slots.Dispose();

    public readonly struct Slot(SemaphoreSlim slots) : IDisposable
    {
        public void Dispose() => slots.Release();
    }
}
