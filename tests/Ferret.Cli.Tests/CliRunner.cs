using System.CommandLine;

namespace Ferret.Cli.Tests;

/// <summary>Runs the ferret command tree in-process and captures what it prints.</summary>
internal static class CliRunner
{
    private static readonly Lock ConsoleLock = new();

    public static (int ExitCode, string Output, string Error) Run(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        // CommandAction reports bad input on Console.Error, and some commands print on Console.Out; capture both for the duration of the call.
        lock (ConsoleLock)
        {
            var previous = Console.Error;
            var previousOut = Console.Out;
            Console.SetError(error);
            Console.SetOut(output);
            try
            {
                int code = FerretCommandLine.Run(args, new InvocationConfiguration { Output = output, Error = error });
                return (code, output.ToString(), error.ToString());
            }
            finally
            {
                Console.SetError(previous);
                Console.SetOut(previousOut);
            }
        }
    }

    /// <summary>
    /// Runs a long command in-process until it ends or <paramref name="ct"/> is cancelled (as Ctrl+C would),
    /// handing every line it prints on standard output to <paramref name="onLine"/>.
    /// </summary>
    public static async Task<(int ExitCode, string Error)> RunAsync(Action<string> onLine, CancellationToken ct, params string[] args)
    {
        var previous = Console.Out;
        var error = new StringWriter();
        TextWriter previousError;
        // Never while Run has the console: its own capture of standard error must not be cut short.
        lock (ConsoleLock)
        {
            previousError = Console.Error;
            Console.SetOut(new LineWatcher(previous, onLine));
            Console.SetError(TextWriter.Synchronized(error));
        }
        try
        {
            // This flow's AnsiConsole writes to the watched standard output, whatever other tests capture meanwhile.
            using var terminal = Terminal.Configure(Console.Out, error);
            int code = await FerretCommandLine.Build().Parse(args).InvokeAsync(new InvocationConfiguration { Output = new StringWriter(), Error = error }, ct);
            return (code, error.ToString());
        }
        finally
        {
            lock (ConsoleLock)
            {
                Console.SetOut(previous);
                Console.SetError(previousError);
            }
        }
    }

    /// <summary>Passes everything on to the real output and reports each finished line.</summary>
    private sealed class LineWatcher(TextWriter inner, Action<string> onLine) : TextWriter
    {
        private readonly System.Text.StringBuilder _line = new();

        public override System.Text.Encoding Encoding => inner.Encoding;

        public override void Write(char value)
        {
            inner.Write(value);
            lock (_line)
            {
                if (value == '\n')
                {
                    onLine(_line.ToString().TrimEnd('\r'));
                    _line.Clear();
                }
                else
                {
                    _line.Append(value);
                }
            }
        }
    }
}
