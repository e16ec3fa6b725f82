using System.Diagnostics;
using Ferret.Cli.Demo;

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
        using var export = new ChildProcess("export", Path.Combine(AppContext.BaseDirectory, "ferret.dll"), ["export", "--preset", "small-llama", "--out", target],
            Path.Combine(_dir, "export.log"));
        // The moment the staging folder exists, the export is under way: interrupt it there.
        while (Directory.GetDirectories(_dir, ".small-llama.partial-*").Length == 0)
        {
            Assert.True(!export.HasExited, $"the export ended before it staged anything: {File.ReadAllText(Path.Combine(_dir, "export.log"))}");
            await Task.Delay(10);
        }
        using (var kill = Process.Start("kill", ["-INT", export.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]))
            await kill.WaitForExitAsync();
        await export.WaitAsync(CancellationToken.None).WaitAsync(TimeSpan.FromMinutes(5));
        var log = File.ReadAllText(Path.Combine(_dir, "export.log"));
        Assert.True(export.ExitCode == 130, $"exit code {export.ExitCode}, expected 130: {log}");
        Assert.True(log.Contains("interrupted", StringComparison.Ordinal) && !log.Contains("   at ", StringComparison.Ordinal), $"one line, no stack: {log}");
        var left = Directory.GetFileSystemEntries(_dir).Select(Path.GetFileName).Where(n => n != "export.log").ToList();
        Assert.True(left.Count == 0, $"nothing half-written is left: {string.Join(", ", left)}");
    }
}
