using Spectre.Console;
using Spectre.Console.Rendering;

namespace Ferret.Cli;

/// <summary>
/// Where the ferret command writes. On a terminal: Spectre.Console as usual (colours, width of the window).
/// Anywhere else (a file, a pipe, tee, CI, a test capturing output): plain text and no wrapping, so paths and
/// fingerprints stay on one line and can be copied. Warnings go to stderr. The choice holds for one invocation's
/// async flow, so two invocations in one process (tests) never write into each other's output.
/// </summary>
internal static class Terminal
{
    /// <summary>Lines are never broken below this width when the output is not a terminal.</summary>
    public const int UnwrappedWidth = 100_000;

    private static readonly AsyncLocal<IAnsiConsole?> Output = new();
    private static readonly AsyncLocal<IAnsiConsole?> Errors = new();
    private static readonly Lock InstallLock = new();
    private static bool _installed;

    /// <summary>Warnings and notes that are not the command's result (stderr).</summary>
    public static IAnsiConsole Error => Errors.Value ?? (Console.IsErrorRedirected ? Plain(Console.Error) : AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) }));

    /// <summary>Sets up the consoles of this invocation's flow; disposing restores the previous ones.</summary>
    public static IDisposable Configure(TextWriter? output, TextWriter? error)
    {
        lock (InstallLock)
        {
            if (!_installed)
            {
                AnsiConsole.Console = new FlowConsole(AnsiConsole.Console);
                _installed = true;
            }
        }
        var previous = (Output.Value, Errors.Value);
        Output.Value = output is not null ? Plain(output) : Console.IsOutputRedirected ? Plain(Console.Out) : null;
        Errors.Value = error is not null ? Plain(error) : null;
        return new Restore(() => (Output.Value, Errors.Value) = previous);
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

    /// <summary>AnsiConsole's console: the one this flow configured, else the process's default.</summary>
    private sealed class FlowConsole(IAnsiConsole fallback) : IAnsiConsole
    {
        private IAnsiConsole Target => Output.Value ?? fallback;

        public Profile Profile => Target.Profile;

        public IAnsiConsoleCursor Cursor => Target.Cursor;

        public IAnsiConsoleInput Input => Target.Input;

        public IExclusivityMode ExclusivityMode => Target.ExclusivityMode;

        public RenderPipeline Pipeline => Target.Pipeline;

        public void Clear(bool home) => Target.Clear(home);

        public void Write(IRenderable renderable) => Target.Write(renderable);

        public void WriteAnsi(Action<AnsiWriter> action) => Target.WriteAnsi(action);
    }

    private sealed class Restore(Action restore) : IDisposable
    {
        public void Dispose() => restore();
    }
}
