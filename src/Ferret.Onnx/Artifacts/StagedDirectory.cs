using System.Collections.Concurrent;
using System.Diagnostics;
using System.Runtime.InteropServices;

namespace Ferret.Onnx.Artifacts;

/// <summary>
/// A folder written in a hidden staging sibling (<c>.NAME.partial-PID-GUID</c>) and renamed into place on
/// <see cref="Commit"/>, so a reader never sees it half-written. Disposing without committing removes the
/// staging folder; so does Ctrl-C or SIGTERM while it exists; and a staging folder left by a process that
/// no longer runs (killed outright) is removed by the next writer of the same target.
/// </summary>
public sealed class StagedDirectory : IDisposable
{
    private const string PartialMarker = ".partial-";
    private static readonly ConcurrentDictionary<string, byte> Active = new(StringComparer.Ordinal);
    private static readonly Lock SignalLock = new();
    private static PosixSignalRegistration[]? _signals;

    private readonly bool _overwrite;
    private bool _committed;

    public StagedDirectory(string directory, bool overwrite)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        Target = Path.GetFullPath(directory.TrimEnd(Path.DirectorySeparatorChar, Path.AltDirectorySeparatorChar));
        _overwrite = overwrite;
        if (File.Exists(Target))
            throw new IOException($"'{Target}' is a file; name a folder.");
        if (Directory.Exists(Target) && !overwrite)
            throw new IOException($"'{Target}' already exists; pass --overwrite to replace it.");
        var parent = Path.GetDirectoryName(Target) ?? throw new ArgumentException($"'{directory}' has no parent folder.", nameof(directory));
        Directory.CreateDirectory(parent);
        RemoveAbandoned(Target);
        Staging = Path.Combine(parent, $".{Path.GetFileName(Target)}{PartialMarker}{Environment.ProcessId}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(Staging);
        Track(Staging);
    }

    /// <summary>The folder being written (hidden, beside the target).</summary>
    public string Staging { get; }

    /// <summary>Where the folder ends up.</summary>
    public string Target { get; }

    public string PathOf(string fileName) => Path.Combine(Staging, fileName);

    /// <summary>Moves the staged folder into place (replacing an old one when allowed).</summary>
    public void Commit()
    {
        string? old = null;
        if (Directory.Exists(Target))
        {
            if (!_overwrite)
                throw new IOException($"'{Target}' appeared while writing; not replacing it.");
            old = Path.Combine(Path.GetDirectoryName(Target)!, $".{Path.GetFileName(Target)}.old-{Guid.NewGuid():N}");
            Directory.Move(Target, old);
        }
        Directory.Move(Staging, Target);
        _committed = true;
        Untrack(Staging);
        if (old is not null)
            Directory.Delete(old, recursive: true);
    }

    public void Dispose()
    {
        if (!_committed)
            Delete(Staging);
        Untrack(Staging);
    }

    /// <summary>Removes staging folders of <paramref name="target"/> whose writer process is gone.</summary>
    public static int RemoveAbandoned(string target)
    {
        ArgumentException.ThrowIfNullOrEmpty(target);
        target = Path.GetFullPath(target.TrimEnd(Path.DirectorySeparatorChar, Path.AltDirectorySeparatorChar));
        var parent = Path.GetDirectoryName(target);
        if (parent is null || !Directory.Exists(parent))
            return 0;
        int removed = 0;
        foreach (var dir in Directory.EnumerateDirectories(parent, $".{Path.GetFileName(target)}{PartialMarker}*"))
        {
            var rest = Path.GetFileName(dir)[($".{Path.GetFileName(target)}{PartialMarker}".Length)..];
            int dash = rest.IndexOf('-', StringComparison.Ordinal);
            // Folders of older versions carry no process id: nobody can still be writing them.
            bool alive = dash > 0 && int.TryParse(rest[..dash], out int pid) && IsRunning(pid);
            if (!alive && Delete(dir))
                removed++;
        }
        foreach (var dir in Directory.EnumerateDirectories(parent, $".{Path.GetFileName(target)}.old-*"))
        {
            if (Delete(dir))
                removed++;
        }
        return removed;
    }

    private static bool IsRunning(int pid)
    {
        if (pid == Environment.ProcessId)
            return true;
        try
        {
            using var p = Process.GetProcessById(pid);
            return !p.HasExited;
        }
        catch (ArgumentException)
        {
            return false;
        }
        catch (InvalidOperationException)
        {
            return false;
        }
    }

    private static bool Delete(string dir)
    {
        try
        {
            if (!Directory.Exists(dir))
                return false;
            Directory.Delete(dir, recursive: true);
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false; // best effort: the next run tries again
        }
    }

    private static void Track(string dir)
    {
        Active[dir] = 0;
        lock (SignalLock)
        {
            if (_signals is not null || OperatingSystem.IsBrowser())
                return;
            // The default action (terminate) still follows: this only removes what would be left half-written.
            _signals = [PosixSignalRegistration.Create(PosixSignal.SIGINT, _ => RemoveActive()), PosixSignalRegistration.Create(PosixSignal.SIGTERM, _ => RemoveActive())];
        }
    }

    private static void Untrack(string dir) => Active.TryRemove(dir, out _);

    private static void RemoveActive()
    {
        foreach (var dir in Active.Keys)
            Delete(dir);
    }
}
