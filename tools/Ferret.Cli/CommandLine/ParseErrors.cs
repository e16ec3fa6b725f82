using System.CommandLine;
using System.CommandLine.Help;

namespace Ferret.Cli;

/// <summary>
/// Turns a command line that does not parse (an unknown option or choice, a missing value) into one line on
/// stderr and exit code 2, the convention for every error, instead of System.CommandLine's help page on stdout.
/// </summary>
internal static class ParseErrors
{
    public const int ExitCode = 2;

    /// <summary>
    /// How long Ctrl-C waits for a command to clean up (remove a staging folder, close a round log) before the
    /// process ends anyway. System.CommandLine's default of 2 s is shorter than one step of an export on a busy machine.
    /// </summary>
    public static readonly TimeSpan CleanupTimeout = TimeSpan.FromSeconds(60);

    /// <summary>Invokes <paramref name="parse"/>, or reports its first error.</summary>
    public static int Invoke(ParseResult parse, string program, InvocationConfiguration? configuration = null)
    {
        ArgumentNullException.ThrowIfNull(parse);
        if (parse.Errors.Count == 0 || parse.Action is HelpAction)
            return parse.Invoke(configuration ?? new InvocationConfiguration { ProcessTerminationTimeout = CleanupTimeout });
        (configuration?.Error ?? Console.Error).WriteLine($"{program}: {Line(parse, program)}");
        return ExitCode;
    }

    /// <inheritdoc cref="Invoke"/>
    public static Task<int> InvokeAsync(ParseResult parse, string program)
    {
        ArgumentNullException.ThrowIfNull(parse);
        if (parse.Errors.Count == 0 || parse.Action is HelpAction)
            return parse.InvokeAsync(new InvocationConfiguration { ProcessTerminationTimeout = CleanupTimeout });
        Console.Error.WriteLine($"{program}: {Line(parse, program)}");
        return Task.FromResult(ExitCode);
    }

    private static string Line(ParseResult parse, string program)
    {
        string message = parse.Errors[0].Message.ReplaceLineEndings(" ").Trim();
        string command = string.Join(' ', parse.CommandResult.Command.Parents.OfType<Command>().Reverse().Skip(1).Select(c => c.Name).Append(parse.CommandResult.Command.Name));
        bool root = parse.CommandResult.Command is RootCommand;
        return root && parse.Tokens.Count == 0
            ? $"name a command ({string.Join(", ", parse.CommandResult.Command.Subcommands.Select(c => c.Name))}); '--help' describes them."
            : $"{message} (see '{(root ? program : program + " " + command)} --help')";
    }
}
