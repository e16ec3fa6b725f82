namespace Ferret.EdgeClient;

/// <summary>Secrets on disk: readable by their owner only, from the first byte, replaced atomically.</summary>
public static class SecretFile
{
    public static void Write(string path, string secret)
    {
        ArgumentNullException.ThrowIfNull(path);
        ArgumentNullException.ThrowIfNull(secret);
        var tmp = path + ".tmp";
        File.Delete(tmp); // a leftover could carry a wider mode, which creating over it would keep
        var create = new FileStreamOptions { Mode = FileMode.Create, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows())
            create.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        using (var stream = new FileStream(tmp, create))
        using (var writer = new StreamWriter(stream))
            writer.Write(secret);
        File.Move(tmp, path, overwrite: true);
    }
}
