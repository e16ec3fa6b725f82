using System.Globalization;
using System.Runtime.InteropServices;

namespace Ferret.Training.Devices;

/// <summary>
/// Versions of the CUDA runtime and cuDNN that the CUDA execution provider loads (CUDA 13: <c>libcudart.so.13</c>;
/// cuDNN 9: <c>libcudnn.so.9</c>), read through their own version calls. Null where a library is not on the
/// library path.
/// </summary>
public static class CudaLibraries
{
    public const string RuntimeLibrary = "libcudart.so.13";
    public const string CudnnLibrary = "libcudnn.so.9";

    private delegate int RuntimeGetVersion(out int version);

    private delegate nuint CudnnGetVersion();

    /// <summary>The CUDA runtime's version as <c>major.minor</c>, e.g. <c>13.0</c>.</summary>
    public static string? RuntimeVersion()
    {
        if (!NativeLibrary.TryLoad(RuntimeLibrary, out var lib))
            return null;
        if (!NativeLibrary.TryGetExport(lib, "cudaRuntimeGetVersion", out var fn))
            return null;
        var call = Marshal.GetDelegateForFunctionPointer<RuntimeGetVersion>(fn);
        return call(out int v) == 0 ? string.Create(CultureInfo.InvariantCulture, $"{v / 1000}.{v % 1000 / 10}") : null;
    }

    /// <summary>cuDNN's version as <c>major.minor.patch</c>, e.g. <c>9.13.0</c>.</summary>
    public static string? CudnnVersion()
    {
        if (!NativeLibrary.TryLoad(CudnnLibrary, out var lib))
            return null;
        if (!NativeLibrary.TryGetExport(lib, "cudnnGetVersion", out var fn))
            return null;
        ulong v = Marshal.GetDelegateForFunctionPointer<CudnnGetVersion>(fn)();
        // cuDNN 9 encodes major * 10000 + minor * 100 + patch.
        return string.Create(CultureInfo.InvariantCulture, $"{v / 10000}.{v % 10000 / 100}.{v % 100}");
    }
}
