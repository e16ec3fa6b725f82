using System.Diagnostics;

namespace Ferret.Cli.ScaleOut;

/// <summary>A throwaway <c>redis-server</c> on a free loopback port, without persistence; killed and removed on dispose.</summary>
internal sealed class LocalRedis : IDisposable
{
    private readonly Process _process;
    private readonly string _dir;
    private readonly Watchdog _watchdog;

    private LocalRedis(Process process, string dir, int port)
    {
        _process = process;
        _dir = dir;
        Port = port;
        _watchdog = new Watchdog($"kill {process.Id} 2>/dev/null; rm -rf {dir}");
    }

    public int Port { get; }

    public int ProcessId => _process.Id;

    public string ConnectionString => $"127.0.0.1:{Port}";

    public static bool Installed => FindServer() is not null;

    public static LocalRedis Start()
    {
        var server = FindServer() ?? throw new FileNotFoundException("redis-server is not installed (not on PATH); apt-get install redis-server.");
        var dir = Directory.CreateTempSubdirectory("ferret-redis-").FullName;
        int port = LocalPostgres.FreePort();
        var psi = new ProcessStartInfo(server)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = dir,
        };
        foreach (var a in new[] { "--port", port.ToString(System.Globalization.CultureInfo.InvariantCulture), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", dir, "--daemonize", "no", "--protected-mode", "yes" })
        {
            psi.ArgumentList.Add(a);
        }
        var ready = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var output = new System.Text.StringBuilder();
        var p = new Process { StartInfo = psi, EnableRaisingEvents = true };
        p.OutputDataReceived += (_, e) =>
        {
            if (e.Data is null)
                return;
            lock (output)
                output.AppendLine(e.Data);
            if (e.Data.Contains("Ready to accept connections", StringComparison.Ordinal))
                ready.TrySetResult();
        };
        p.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is not null)
            {
                lock (output)
                    output.AppendLine(e.Data);
            }
        };
        p.Exited += (_, _) => ready.TrySetException(new InvalidOperationException($"redis-server exited: {output}"));
        p.Start();
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        var redis = new LocalRedis(p, dir, port);
        try
        {
            if (!ready.Task.Wait(TimeSpan.FromSeconds(60)))
                throw new InvalidOperationException($"redis-server did not become ready in 60 s: {output}");
            return redis;
        }
        catch
        {
            redis.Dispose();
            throw;
        }
    }

    public void Dispose()
    {
        try
        {
            if (!_process.HasExited)
                _process.Kill(entireProcessTree: true);
            _process.WaitForExit(5000);
        }
        catch (InvalidOperationException)
        {
            // already gone
        }
        _process.Dispose();
        try
        {
            Directory.Delete(_dir, recursive: true);
        }
        catch (IOException)
        {
            // the temp cleaner gets it
        }
        // Last: were this process to die mid-way, the watchdog finishes the job.
        _watchdog.Dispose();
    }

    private static string? FindServer() =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .Select(d => Path.Combine(d, "redis-server")).FirstOrDefault(File.Exists);

    /// <summary>Direct children of a process, from /proc (PostgreSQL's backends).</summary>
    internal static IEnumerable<int> ChildrenOf(int pid)
    {
        var children = $"/proc/{pid}/task/{pid}/children";
        if (!File.Exists(children))
            return [];
        return File.ReadAllText(children).Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(s => int.Parse(s, System.Globalization.CultureInfo.InvariantCulture)).ToList();
    }
}
