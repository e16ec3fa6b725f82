using System.CommandLine;

namespace Ferret.Cli;

/// <summary>
/// Runs a command body and turns bad input into one clear line on stderr and exit code 2, instead of a
/// stack trace. Bugs (anything else) still surface with their stack.
/// </summary>
internal static class CommandAction
{
    public const int UsageError = 2;

    public static void Set(Command command, Func<ParseResult, int> body)
    {
        ArgumentNullException.ThrowIfNull(command);
        command.SetAction(parse => Run(() => body(parse)));
    }

    public static void SetAsync(Command command, Func<ParseResult, CancellationToken, Task<int>> body)
    {
        ArgumentNullException.ThrowIfNull(command);
        command.SetAction(async (parse, ct) =>
        {
            try
            {
                return await body(parse, ct).ConfigureAwait(false);
            }
            catch (Exception e) when (ct.IsCancellationRequested)
            {
                // Whatever broke after Ctrl-C (a staging folder removed under a writer) is the interruption.
                return Report(new OperationCanceledException(e.Message, e, ct));
            }
            catch (Exception e) when (IsUserError(e))
            {
                return Report(e);
            }
        });
    }

    private static int Run(Func<int> body)
    {
        try
        {
            return body();
        }
        catch (Exception e) when (IsUserError(e))
        {
            return Report(e);
        }
    }

    private static bool IsUserError(Exception e) => e is ArgumentException or InvalidDataException or IOException
        or FormatException or NotSupportedException or KeyNotFoundException or UnauthorizedAccessException
        or OperationCanceledException or HttpRequestException;

    /// <summary>Exit code of a command stopped by Ctrl-C (128 + SIGINT), as shells report it.</summary>
    public const int Interrupted = 130;

    private static int Report(Exception e)
    {
        if (e is OperationCanceledException)
        {
            Console.Error.WriteLine("ferret: interrupted.");
            return Interrupted;
        }
        Console.Error.WriteLine($"ferret: {e.Message}");
        return UsageError;
    }
}
