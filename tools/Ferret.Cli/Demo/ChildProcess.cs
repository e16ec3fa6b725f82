using System.Diagnostics;

namespace Ferret.Cli.Demo;

/// <summary>
/// A .NET program started as a separate process (<c>dotnet app.dll args</c>), its output written line by
/// line to a log file and offered to a callback. Disposing kills it (and its children) if still running.
/// </summary>
internal sealed class ChildProcess : IDisposable
{
    private readonly Process _process;
    private readonly StreamWriter _log;

    public ChildProcess(string name, string assembly, IEnumerable<string> arguments, string logPath, Action<string>? onLine = null,
        IReadOnlyDictionary<string, string>? environment = null)
    {
        Name = name;
        LogPath = logPath;
        _log = new StreamWriter(logPath) { AutoFlush = true };
        var psi = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = Path.GetDirectoryName(assembly)!,
        };
        psi.ArgumentList.Add(assembly);
        foreach (var a in arguments)
            psi.ArgumentList.Add(a);
        psi.Environment["DOTNET_NOLOGO"] = "1";
        foreach (var (k, v) in environment ?? new Dictionary<string, string>())
            psi.Environment[k] = v;
        _process = new Process { StartInfo = psi, EnableRaisingEvents = true };
        void Line(string? line)
        {
            if (line is null)
                return;
            lock (_log)
                _log.WriteLine(line);
            onLine?.Invoke(line);
        }
        _process.OutputDataReceived += (_, e) => Line(e.Data);
        _process.ErrorDataReceived += (_, e) => Line(e.Data);
        _process.Start();
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
    }

    public string Name { get; }

    public string LogPath { get; }

    public bool HasExited => _process.HasExited;

    public int Id => _process.Id;

    public int ExitCode => _process.ExitCode;

    public Task WaitAsync(CancellationToken ct) => _process.WaitForExitAsync(ct);

    public void Kill()
    {
        try
        {
            if (!_process.HasExited)
                _process.Kill(entireProcessTree: true);
        }
        catch (InvalidOperationException)
        {
            // already gone
        }
    }

    public void Dispose()
    {
        Kill();
        _process.WaitForExit(5000);
        _process.Dispose();
        lock (_log)
            _log.Dispose();
    }
}
