using System.Diagnostics;

namespace Ferret.Cli.Tests.EndToEnd;

/// <summary>Ctrl-C on a real ferret process: it says "interrupted", exits 130, and leaves no half-written folder.</summary>
[Collection(SharedMachine.Name)]
public sealed class InterruptTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("ferret-interrupt-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public async Task Ctrl_c_during_an_export_leaves_no_staging_folder_and_says_interrupted()
    {
        var target = Path.Combine(_dir, "small-llama");
        var logPath = Path.Combine(_dir, "export.log");
        // A shell's background job (a CI step, `cmd &`) starts with SIGINT ignored and its children inherit that;
        // the user's Ctrl-C reaches a foreground ferret with the default disposition, so the test restores it.
        var psi = new ProcessStartInfo("env") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { "--default-signal=INT", "dotnet", Path.Combine(AppContext.BaseDirectory, "ferret.dll"), "export", "--preset", "small-llama", "--out", target })
            psi.ArgumentList.Add(a);
        using var export = Process.Start(psi)!;
        var output = new System.Text.StringBuilder();
        var underWay = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        void Line(string? line)
        {
            if (line is null)
                return;
            lock (output)
                output.AppendLine(line);
            // The first progress line comes after the staging folder exists: the export is under way.
            if (line.StartsWith("exporting:", StringComparison.Ordinal))
                underWay.TrySetResult();
        }
        export.OutputDataReceived += (_, e) => Line(e.Data);
        export.ErrorDataReceived += (_, e) => Line(e.Data);
        export.Exited += (_, _) => underWay.TrySetException(new InvalidOperationException("the export ended before it reported any progress"));
        export.EnableRaisingEvents = true;
        export.BeginOutputReadLine();
        export.BeginErrorReadLine();
        string Log()
        {
            lock (output)
                return output.ToString();
        }
        // Interrupt it there (the time limit is a hang guard, not a deadline).
        await underWay.Task.WaitAsync(TimeSpan.FromMinutes(5));
        Assert.True(Directory.GetDirectories(_dir, ".small-llama.partial-*").Length == 1, $"the export has staged its folder: {Log()}");
        using (var kill = Process.Start("kill", ["-INT", export.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]))
            await kill.WaitForExitAsync();
        await export.WaitForExitAsync().WaitAsync(TimeSpan.FromMinutes(5));
        var log = Log();
        File.WriteAllText(logPath, log);
        Assert.True(export.ExitCode == 130, $"exit code {export.ExitCode}, expected 130: {log}");
        Assert.True(log.Contains("interrupted", StringComparison.Ordinal) && !log.Contains("   at ", StringComparison.Ordinal), $"one line, no stack: {log}");
        var left = Directory.GetFileSystemEntries(_dir).Select(Path.GetFileName).Where(n => n != "export.log").ToList();
        Assert.True(left.Count == 0, $"nothing half-written is left: {string.Join(", ", left)}");
    }
}
