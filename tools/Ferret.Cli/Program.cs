using Ferret.Cli;

return FerretCommandLine.Build().Parse(args).Invoke();
