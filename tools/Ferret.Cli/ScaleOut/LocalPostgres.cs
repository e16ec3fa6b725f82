using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace Ferret.Cli.ScaleOut;

/// <summary>
/// A throwaway PostgreSQL server on loopback, in a temporary folder (Debian's <c>postgresql</c> package:
/// <c>initdb</c> and <c>pg_ctl</c>), trusting local connections as user <c>ferret</c>; stopped and removed on
/// dispose. PostgreSQL refuses to run as root, so as root it runs as the <c>postgres</c> user.
/// </summary>
internal sealed class LocalPostgres : IDisposable
{
    private readonly string _bin;
    private readonly string _dir;
    private bool _running;
    private Watchdog? _watchdog;

    private LocalPostgres(string bin, string dir, int port)
    {
        _bin = bin;
        _dir = dir;
        Port = port;
    }

    public int Port { get; }

    public string DataDirectory => Path.Combine(_dir, "data");

    /// <summary>A connection string to <paramref name="database"/> on this server.</summary>
    public string ConnectionString(string database = "postgres") => $"Host=127.0.0.1;Port={Port};Username=ferret;Database={database}";

    /// <summary>The folder holding <c>initdb</c> and <c>pg_ctl</c>, or null when PostgreSQL is not installed.</summary>
    public static string? FindBinaries()
    {
        var candidates = new List<string>();
        if (Directory.Exists("/usr/lib/postgresql"))
            candidates.AddRange(Directory.GetDirectories("/usr/lib/postgresql").OrderByDescending(VersionOf).Select(d => Path.Combine(d, "bin")));
        candidates.AddRange((Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries));
        return candidates.FirstOrDefault(d => File.Exists(Path.Combine(d, "initdb")) && File.Exists(Path.Combine(d, "pg_ctl")));
    }

    /// <summary>
    /// Creates a cluster in a new temporary folder and starts it on a free loopback port. <paramref name="durable"/>
    /// false turns fsync off (tests: the server outlives every coordinator it serves, nothing is lost by a coordinator's kill).
    /// </summary>
    public static LocalPostgres Start(bool durable = true)
    {
        var bin = FindBinaries() ?? throw new FileNotFoundException("PostgreSQL is not installed (no initdb/pg_ctl under /usr/lib/postgresql or on PATH); apt-get install postgresql.");
        var dir = Directory.CreateTempSubdirectory("ferret-postgres-").FullName;
        var server = new LocalPostgres(bin, dir, FreePort());
        try
        {
            if (AsRoot && !OperatingSystem.IsWindows())
                File.SetUnixFileMode(dir, (UnixFileMode)0x1FF); // rwx for the postgres user, who creates data/ inside
            Run(Path.Combine(bin, "initdb"), ["-D", server.DataDirectory, "-U", "ferret", "--auth=trust", "-E", "UTF8", "--no-sync", "--no-instructions"]);
            string settings = $"-h 127.0.0.1 -p {server.Port} -k {dir} -c max_connections=500" + (durable ? "" : " -c fsync=off -c synchronous_commit=off -c full_page_writes=off");
            Run(Path.Combine(bin, "pg_ctl"), ["-D", server.DataDirectory, "-o", settings, "-l", Path.Combine(dir, "postgres.log"), "-w", "-t", "60", "start"]);
            server._running = true;
            server._watchdog = new Watchdog(
                $"{(AsRoot ? "runuser -u postgres -- " : "")}{Path.Combine(bin, "pg_ctl")} -D {server.DataDirectory} -m immediate stop >/dev/null 2>&1; rm -rf {dir}");
            return server;
        }
        catch
        {
            server.Dispose();
            throw;
        }
    }

    /// <summary>Creates an empty database on this server; its connection string.</summary>
    public string CreateDatabase(string name)
    {
        Run(Path.Combine(_bin, "createdb"), ["-h", "127.0.0.1", "-p", Port.ToString(System.Globalization.CultureInfo.InvariantCulture), "-U", "ferret", name]);
        return ConnectionString(name);
    }

    /// <summary>Process ids of the server and its backends (for CPU accounting), from /proc.</summary>
    public IReadOnlyList<int> ProcessIds()
    {
        var pidFile = Path.Combine(DataDirectory, "postmaster.pid");
        if (!File.Exists(pidFile) || !int.TryParse(File.ReadLines(pidFile).First(), out int main))
            return [];
        return [main, .. LocalRedis.ChildrenOf(main)];
    }

    public void Dispose()
    {
        if (_running)
        {
            try
            {
                Run(Path.Combine(_bin, "pg_ctl"), ["-D", DataDirectory, "-m", "immediate", "-w", "stop"]);
            }
            catch (InvalidOperationException)
            {
                // already stopped; the folder goes anyway
            }
            _running = false;
        }
        try
        {
            Directory.Delete(_dir, recursive: true);
        }
        catch (IOException)
        {
            // the temp cleaner gets it
        }
        // Last: were this process to die mid-way, the watchdog finishes the job.
        _watchdog?.Dispose();
    }

    private static bool AsRoot => Environment.UserName == "root";

    private static Version VersionOf(string dir) => Version.TryParse(Path.GetFileName(dir).Contains('.', StringComparison.Ordinal) ? Path.GetFileName(dir) : Path.GetFileName(dir) + ".0", out var v) ? v : new Version(0, 0);

    /// <summary>Runs a PostgreSQL tool to its end (as the postgres user when we are root); its output is the error when it fails.</summary>
    private static void Run(string tool, IEnumerable<string> args)
    {
        var psi = new ProcessStartInfo(AsRoot ? "runuser" : tool)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = Path.GetTempPath(),
        };
        if (AsRoot)
        {
            foreach (var a in new[] { "-u", "postgres", "--", tool })
                psi.ArgumentList.Add(a);
        }
        foreach (var a in args)
            psi.ArgumentList.Add(a);
        using var p = Process.Start(psi) ?? throw new InvalidOperationException($"Could not start {tool}.");
        var output = p.StandardOutput.ReadToEndAsync();
        var error = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(120_000))
        {
            p.Kill(entireProcessTree: true);
            throw new InvalidOperationException($"{Path.GetFileName(tool)} did not finish in 120 s.");
        }
        if (p.ExitCode != 0)
            throw new InvalidOperationException($"{Path.GetFileName(tool)} failed ({p.ExitCode}): {error.Result.Trim()} {output.Result.Trim()}".Trim());
    }

    internal static int FreePort()
    {
        using var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        int port = ((IPEndPoint)probe.LocalEndpoint).Port;
        probe.Stop();
        return port;
    }
}
