namespace Ferret.Coordinator.Security;

/// <summary>Secrets come from a file or the environment, never the command line (which <c>ps</c> shows to every user).</summary>
public static class Secrets
{
    /// <summary>Reads <see cref="CoordinatorOptions.AdminKeyFile"/> into <see cref="CoordinatorOptions.AdminKey"/> when it is set.</summary>
    public static void ReadAdminKeyFile(CoordinatorOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (string.IsNullOrEmpty(options.AdminKeyFile))
            return;
        if (!File.Exists(options.AdminKeyFile))
            throw new FileNotFoundException($"Ferret:AdminKeyFile '{options.AdminKeyFile}' does not exist.", options.AdminKeyFile);
        if (!OperatingSystem.IsWindows() && (File.GetUnixFileMode(options.AdminKeyFile) & (UnixFileMode.GroupRead | UnixFileMode.OtherRead)) != 0)
            throw new UnauthorizedAccessException($"Ferret:AdminKeyFile '{options.AdminKeyFile}' is readable by other users; chmod 600 it.");
        var key = File.ReadAllText(options.AdminKeyFile).Trim();
        if (key.Length == 0)
            throw new InvalidDataException($"Ferret:AdminKeyFile '{options.AdminKeyFile}' is empty.");
        options.AdminKey = key;
    }
}
