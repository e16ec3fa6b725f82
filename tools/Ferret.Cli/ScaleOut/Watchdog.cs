using System.Diagnostics;

namespace Ferret.Cli.ScaleOut;

/// <summary>
/// A small shell loop that runs a clean-up command once this process is gone, however it ended (a test host
/// killed after its run, Ctrl+C): throwaway servers never outlive whoever started them. Disposing it after a
/// clean stop ends the loop without running the command.
/// </summary>
internal sealed class Watchdog : IDisposable
{
    private readonly Process _process;

    public Watchdog(string cleanUp)
    {
        // In a session of its own (setsid), so a signal to this process's group (timeout, Ctrl+C) does not take the watchdog with it.
        bool setsid = File.Exists("/usr/bin/setsid") || File.Exists("/bin/setsid");
        var psi = new ProcessStartInfo(setsid ? "setsid" : "sh") { UseShellExecute = false, RedirectStandardInput = false };
        if (setsid)
            psi.ArgumentList.Add("sh");
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add($"while kill -0 {Environment.ProcessId} 2>/dev/null; do sleep 1; done; {cleanUp}");
        _process = Process.Start(psi) ?? throw new InvalidOperationException("Could not start the clean-up watchdog (sh).");
    }

    public void Dispose()
    {
        try
        {
            if (!_process.HasExited)
                _process.Kill();
        }
        catch (InvalidOperationException)
        {
            // already gone
        }
        _process.Dispose();
    }
}
