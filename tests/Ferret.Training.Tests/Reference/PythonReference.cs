using System.Diagnostics;

namespace Ferret.Training.Tests.Reference;

/// <summary>
/// The independent PyTorch reference (tools/reference/causal_lm_reference.py) run under Debian's
/// /usr/bin/python3 with python3-torch. Tests that need it return early when torch is missing; the
/// fixture-based tests still run everywhere.
/// </summary>
internal static class PythonReference
{
    private const string Python = "/usr/bin/python3";
    private static readonly Lazy<bool> HasTorch = new(() =>
    {
        if (!File.Exists(Python))
            return false;
        using var p = Process.Start(new ProcessStartInfo(Python, ["-c", "import torch"]) { RedirectStandardError = true, RedirectStandardOutput = true })!;
        p.WaitForExit();
        return p.ExitCode == 0;
    });

    public static bool Available => HasTorch.Value;

    public static string Script => Path.Combine(AppContext.BaseDirectory, "Fixtures", "causal_lm_reference.py");

    /// <summary>Runs the script with <paramref name="arguments"/> and returns the JSON it wrote to the last one.</summary>
    public static string Run(params string[] arguments)
    {
        using var run = Process.Start(new ProcessStartInfo(Python, [Script, .. arguments]) { RedirectStandardError = true, RedirectStandardOutput = true })!;
        var stdout = run.StandardOutput.ReadToEndAsync();
        string err = run.StandardError.ReadToEnd();
        run.WaitForExit();
        _ = stdout.Result;
        Assert.True(run.ExitCode == 0, $"the PyTorch reference exited with {run.ExitCode}: {err}");
        return File.ReadAllText(arguments[^1]);
    }
}
