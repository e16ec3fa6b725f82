namespace Ferret.Cli.Demo;

/// <summary>Secrets the harnesses write (admin keys, client tokens): readable by their owner only, from the first byte (0600).</summary>
internal static class SecretFile
{
    public static void Write(string path, string secret)
    {
        var create = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows())
            create.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        using var writer = new StreamWriter(new FileStream(path, create));
        writer.Write(secret);
    }
}
