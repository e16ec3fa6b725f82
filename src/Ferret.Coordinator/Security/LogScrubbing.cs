using System.Text.RegularExpressions;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace Ferret.Coordinator.Security;

/// <summary>
/// Keeps secrets out of the logs whatever the log levels: SignalR clients that cannot set headers (browsers)
/// send their bearer token as <c>access_token</c> in the query string, and ASP.NET Core logs request URLs at
/// Information. Every logger provider is wrapped so that such values are replaced by <c>***</c> in the message
/// and in every structured field before any sink sees them; and ASP.NET Core's own request logs default to
/// Warning in code, not only in appsettings.json (which is not read when the coordinator starts elsewhere).
/// </summary>
public static partial class LogScrubbing
{
    public const string Mask = "***";

    /// <summary>Replaces the value of every <c>access_token</c> query parameter.</summary>
    public static string Scrub(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        return text.Contains("access_token", StringComparison.OrdinalIgnoreCase) ? Secret().Replace(text, Mask) : text;
    }

    /// <summary>Safe defaults (unless configured otherwise) and the scrubbing wrapper around every provider.</summary>
    public static void Configure(WebApplicationBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        // Request logs (URLs, query strings) at Information are for debugging: off unless configured.
        if (builder.Configuration.GetSection("Logging:LogLevel").GetChildren().All(c => !c.Key.StartsWith("Microsoft.AspNetCore", StringComparison.Ordinal)))
            builder.Logging.AddFilter("Microsoft.AspNetCore", LogLevel.Warning);
        // Every logger comes out of this factory wrapped; the inner factory keeps the real providers, so
        // per-provider settings (Logging:Console:LogLevel) still apply.
        builder.Services.Replace(ServiceDescriptor.Singleton<ILoggerFactory>(sp => new ScrubbingLoggerFactory(new LoggerFactory(
            sp.GetServices<ILoggerProvider>(),
            sp.GetRequiredService<IOptionsMonitor<LoggerFilterOptions>>(),
            sp.GetService<IOptions<LoggerFactoryOptions>>(),
            sp.GetService<IExternalScopeProvider>()))));
    }

    [GeneratedRegex(@"(?<=access_token=)[^&\s""']+", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant)]
    private static partial Regex Secret();

    private sealed class ScrubbingLoggerFactory(LoggerFactory inner) : ILoggerFactory
    {
        public ILogger CreateLogger(string categoryName) => new ScrubbingLogger(inner.CreateLogger(categoryName));

        public void AddProvider(ILoggerProvider provider) => inner.AddProvider(provider);

        public void Dispose() => inner.Dispose();
    }

    private sealed class ScrubbingLogger(ILogger inner) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => inner.BeginScope(state);

        public bool IsEnabled(LogLevel logLevel) => inner.IsEnabled(logLevel);

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (!inner.IsEnabled(logLevel))
                return;
            if (!Suspect(state))
            {
                inner.Log(logLevel, eventId, state, exception, formatter);
                return;
            }
            var fields = state is IReadOnlyList<KeyValuePair<string, object?>> list
                ? list.Select(kv => kv.Value is string s ? new KeyValuePair<string, object?>(kv.Key, Scrub(s)) : kv).ToList()
                : [];
            inner.Log(logLevel, eventId, new Scrubbed(Scrub(formatter(state, exception)), fields), exception, static (s, _) => s.Message);
        }

        private static bool Suspect<TState>(TState state)
        {
            if (state is IReadOnlyList<KeyValuePair<string, object?>> list)
            {
                foreach (var kv in list)
                {
                    if (kv.Value is string s && s.Contains("access_token", StringComparison.OrdinalIgnoreCase))
                        return true;
                }
                return false;
            }
            return state?.ToString()?.Contains("access_token", StringComparison.OrdinalIgnoreCase) == true;
        }
    }

    /// <summary>A scrubbed copy of a log entry's state: its message and its structured fields.</summary>
    private sealed class Scrubbed(string message, IReadOnlyList<KeyValuePair<string, object?>> fields) : IReadOnlyList<KeyValuePair<string, object?>>
    {
        public string Message { get; } = message;

        public int Count => fields.Count;

        public KeyValuePair<string, object?> this[int index] => fields[index];

        public IEnumerator<KeyValuePair<string, object?>> GetEnumerator() => fields.GetEnumerator();

        System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => GetEnumerator();

        public override string ToString() => Message;
    }
}
