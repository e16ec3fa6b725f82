using Spectre.Console;

namespace Ferret.Cli;

/// <summary>
/// Where the ferret command writes. On a terminal: Spectre.Console as usual (colours, width of the window).
/// Anywhere else (a file, a pipe, tee, CI, a test capturing output): plain text and no wrapping, so paths and
/// fingerprints stay on one line and can be copied. Warnings go to stderr.
/// </summary>
internal static class Terminal
{
    /// <summary>Lines are never broken below this width when the output is not a terminal.</summary>
    public const int UnwrappedWidth = 100_000;

    private static IAnsiConsole? _error;

    /// <summary>Warnings and notes that are not the command's result (stderr).</summary>
    public static IAnsiConsole Error => _error ??= Plain(Console.Error);

    /// <summary>Sets up AnsiConsole for one invocation; disposing restores the previous consoles.</summary>
    public static IDisposable Configure(TextWriter? output, TextWriter? error)
    {
        var previous = (AnsiConsole.Console, _error);
        if (output is not null)
            AnsiConsole.Console = Plain(output);
        else if (Console.IsOutputRedirected)
            AnsiConsole.Console = Plain(Console.Out);
        _error = error is not null ? Plain(error) : Console.IsErrorRedirected ? Plain(Console.Error) : AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) });
        return new Restore(() => (AnsiConsole.Console, _error) = previous);
    }

    /// <summary>A console without colours or wrapping on <paramref name="writer"/>.</summary>
    public static IAnsiConsole Plain(TextWriter writer)
    {
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Ansi = AnsiSupport.No,
            ColorSystem = ColorSystemSupport.NoColors,
            Interactive = InteractionSupport.No,
            Out = new AnsiConsoleOutput(writer),
        });
        console.Profile.Width = UnwrappedWidth;
        return console;
    }

    private sealed class Restore(Action restore) : IDisposable
    {
        public void Dispose() => restore();
    }
}
