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
        var psi = new ProcessStartInfo("sh") { UseShellExecute = false, RedirectStandardInput = false };
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
