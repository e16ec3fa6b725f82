using System.Globalization;
using System.Text.Json;
using Ferret.Onnx.Artifacts;
using Ferret.Training.Runtime;
using Ferret.Training.Verification;
using Microsoft.ML.OnnxRuntime;

namespace Ferret.EdgeClient;

/// <summary>
/// ferret-edge's start-up device check: <c>ferret doctor</c>'s check of this device with this model, run before
/// the client joins. A pass is remembered per device, model fingerprint, TF32 setting and ONNX Runtime version in
/// a cache folder, so a restarted client does not pay for it again; a failure is never cached.
/// </summary>
internal static class DeviceSelfTest
{
    /// <summary>The default cache: <c>$XDG_CACHE_HOME/ferret/device-checks</c>, else <c>~/.cache/ferret/device-checks</c>.</summary>
    public static string DefaultCacheDirectory()
    {
        var root = Environment.GetEnvironmentVariable("XDG_CACHE_HOME");
        if (string.IsNullOrEmpty(root))
            root = Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache");
        return Path.Combine(root, "ferret", "device-checks");
    }

    public static string CacheFile(string directory, ArtifactPackage package, SessionSettings session) =>
        Path.Combine(directory, string.Create(CultureInfo.InvariantCulture,
            $"{package.Manifest.ParametersSha256[..16]}-{session.Device.ToString().Replace(':', '_')}-tf32{(session.Tf32 ? 1 : 0)}-ort{OrtEnv.Instance().GetVersionString()}.json"));

    /// <summary>Runs the check unless a pass is cached; returns the verdict and a one-line summary.</summary>
    public static (bool Passed, string Summary) Run(ArtifactPackage package, SessionSettings session, string cacheDirectory, Action<string> say)
    {
        var file = CacheFile(cacheDirectory, package, session);
        if (File.Exists(file))
        {
            try
            {
                if (JsonSerializer.Deserialize<DeviceCheckReport>(File.ReadAllText(file)) is { Passed: true } cached)
                    return (true, $"{cached.Device}: passed (checked before, {file})");
            }
            catch (JsonException)
            {
                // A damaged cache entry is checked again.
            }
        }
        say($"checking device {session.Device} against the cpu (ferret doctor)");
        var report = DeviceCheck.Run(package, new DeviceCheckOptions { Device = session.Device, Tf32 = session.Tf32, IntraOpThreads = session.IntraOpThreads });
        foreach (var p in report.Paths.Where(p => p.Path != "reference"))
        {
            say(string.Create(CultureInfo.InvariantCulture,
                $"  {p.Path} buffers on {p.Provider}: loss {p.Loss:F4}, gradient error {p.GradientError:0.0e+00}, step error {p.ParameterError:0.0e+00}{(p.Passed ? "" : " FAIL: " + p.Note)}"));
        }
        if (!report.Passed)
            return (false, report.Failure ?? "the device disagrees with the cpu");
        Directory.CreateDirectory(cacheDirectory);
        var tmp = file + ".tmp-" + Environment.ProcessId.ToString(CultureInfo.InvariantCulture);
        File.WriteAllText(tmp, JsonSerializer.Serialize(report));
        File.Move(tmp, file, overwrite: true);
        return (true, $"{report.Device}: passed");
    }
}

/// <summary>The device failed its start-up check; the client reported why and did not join.</summary>
public sealed class DeviceCheckFailedException(string message) : Exception(message);
