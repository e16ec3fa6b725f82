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
                int code = FerretCommandLine.Build().Parse(args).Invoke(new InvocationConfiguration { Output = output, Error = error });
                return (code, output.ToString(), error.ToString());
            }
            finally
            {
                Console.SetError(previous);
                Console.SetOut(previousOut);
            }
        }
    }
}
