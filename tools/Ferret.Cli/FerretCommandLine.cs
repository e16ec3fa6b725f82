using System.CommandLine;
using Ferret.Cli.Commands;
using Ferret.Cli.Demo;

namespace Ferret.Cli;

/// <summary>The <c>ferret</c> command tree. Each command lives in <c>Commands/</c> and adds itself here.</summary>
internal static class FerretCommandLine
{
    public static RootCommand Build()
    {
        var root = new RootCommand("Ferret.NET: federated full-parameter fine-tuning of LLMs with shared randomness.");
        // Commands register below, one line each.
        root.Add(DemoCommand.Create());
        root.Add(BasisCommand.Create());
        root.Add(ExportCommand.Create());
        root.Add(InspectCommand.Create());
        root.Add(GradcheckCommand.Create());
        root.Add(DoctorCommand.Create());
        root.Add(DataCommand.Create());
        root.Add(TrainCommand.Create());
        root.Add(SimulateCommand.Create());
        root.Add(BenchCommand.Create(BenchProjectionCommand.Create(), BenchTrainCommand.Create(), BenchIdleCommand.Create()));
        return root;
    }
}
