using Ferret.Cli;

return FerretCommandLine.Run(args);
