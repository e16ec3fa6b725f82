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
        root.Add(DpAccountCommand.Create());
        root.Add(ModelCommand.Create());
        root.Add(GenerateCommand.Create());
        root.Add(BenchCommand.Create(BenchProjectionCommand.Create(), BenchTrainCommand.Create(), BenchIdleCommand.Create(), BenchScaleCommand.Create(),
            BenchChaosCommand.Create(), BenchFuzzCommand.Create(), BenchLoadCommand.Create(),
            BenchSecureAggregationCommand.Create(), BenchUploadCommand.Create()));
        return root;
    }

    /// <summary>Parses and runs a command line; a line that does not parse is one error line and exit code 2.</summary>
    public static int Run(string[] args, InvocationConfiguration? configuration = null)
    {
        using var terminal = Terminal.Configure(configuration?.Output, configuration?.Error);
        return ParseErrors.Invoke(Build().Parse(args), "ferret", configuration);
    }
}
