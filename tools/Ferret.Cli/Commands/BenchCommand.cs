using System.CommandLine;

namespace Ferret.Cli.Commands;

/// <summary><c>ferret bench</c>: the parent of the throughput benchmarks.</summary>
internal static class BenchCommand
{
    public static Command Create(params Command[] benchmarks)
    {
        var command = new Command("bench", "Throughput benchmarks of Ferret.NET's hot paths.");
        foreach (var b in benchmarks)
            command.Add(b);
        return command;
    }
}
