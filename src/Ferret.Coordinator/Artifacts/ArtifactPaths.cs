namespace Ferret.Coordinator.Artifacts;

/// <summary>
/// Confinement of everything served or opened to the artifacts folder: paths are compared after every
/// symbolic link on the way has been followed, so neither a name nor a link inside a package reaches out.
/// </summary>
public static class ArtifactPaths
{
    private const int MaxLinks = 40;

    /// <summary>True when <paramref name="path"/>, links resolved, lies strictly inside <paramref name="root"/>, links resolved.</summary>
    public static bool IsConfined(string root, string path)
    {
        ArgumentNullException.ThrowIfNull(root);
        ArgumentNullException.ThrowIfNull(path);
        try
        {
            string realRoot = RealPath(root).TrimEnd(Path.DirectorySeparatorChar) + Path.DirectorySeparatorChar;
            return RealPath(path).StartsWith(realRoot, OperatingSystem.IsWindows() ? StringComparison.OrdinalIgnoreCase : StringComparison.Ordinal);
        }
        catch (IOException)
        {
            return false; // a link loop or an unreadable link is not a path we serve
        }
    }

    /// <summary>The absolute path with every symbolic link along it followed (what realpath(3) answers).</summary>
    public static string RealPath(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        string pending = Path.GetFullPath(path);
        for (int links = 0; ; links++)
        {
            string rootPart = Path.GetPathRoot(pending) ?? "";
            var parts = pending[rootPart.Length..].Split([Path.DirectorySeparatorChar, Path.AltDirectorySeparatorChar], StringSplitOptions.RemoveEmptyEntries);
            string current = rootPart;
            string? restart = null;
            for (int i = 0; i < parts.Length; i++)
            {
                string next = Path.Combine(current, parts[i]);
                if (new FileInfo(next).LinkTarget is { } target)
                {
                    if (links >= MaxLinks)
                        throw new IOException($"Too many symbolic links resolving '{path}'.");
                    restart = Path.Combine([Path.GetFullPath(target, current), .. parts[(i + 1)..]]);
                    break;
                }
                current = next;
            }
            if (restart is null)
                return current;
            pending = Path.GetFullPath(restart);
        }
    }
}
