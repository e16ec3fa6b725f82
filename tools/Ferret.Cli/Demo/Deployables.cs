namespace Ferret.Cli.Demo;

/// <summary>
/// Finds the coordinator and edge-client assemblies the CLI was built with. The CLI's project references
/// both (without referencing their assemblies), so building it builds them, in the same configuration. A
/// published layout (all three published into one folder, as on a GPU machine) is found first.
/// </summary>
internal static class Deployables
{
    public static string Coordinator => Locate("Ferret.Coordinator", "Ferret.Coordinator.dll");

    public static string EdgeClient => Locate("Ferret.EdgeClient", "ferret-edge.dll");

    /// <summary>The clone the CLI was built in: the first folder above its assembly that holds Ferret.sln.</summary>
    public static string RepositoryRoot
    {
        get
        {
            var repo = new DirectoryInfo(AppContext.BaseDirectory);
            while (repo is not null && !File.Exists(Path.Combine(repo.FullName, "Ferret.sln")))
                repo = repo.Parent;
            return repo?.FullName
                ?? throw new FileNotFoundException($"Cannot find the Ferret.NET repository above '{AppContext.BaseDirectory}'; run the demo from a clone (dotnet run --project tools/Ferret.Cli -- demo).");
        }
    }

    private static string Locate(string project, string assembly)
    {
        var beside = Path.Combine(AppContext.BaseDirectory, assembly);
        if (File.Exists(beside))
            return beside;
        var baseDir = new DirectoryInfo(AppContext.BaseDirectory);
        // tools/Ferret.Cli/bin/<Configuration>/<tfm>/: the configuration and framework the CLI was built for.
        string tfm = baseDir.Name, configuration = baseDir.Parent?.Name ?? "Release";
        var repo = RepositoryRoot;
        foreach (var config in new[] { configuration, "Release", "Debug" }.Distinct())
        {
            var path = Path.Combine(repo, "src", project, "bin", config, tfm, assembly);
            if (File.Exists(path))
                return path;
        }
        throw new FileNotFoundException($"{assembly} is not built under src/{project}/bin; build the solution first (dotnet build -c {configuration}).");
    }
}
