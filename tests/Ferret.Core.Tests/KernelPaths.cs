using Ferret.Core.Randomness;

namespace Ferret.Core.Tests;

/// <summary>The kernel paths this CPU can run, as xUnit member data.</summary>
public static class KernelPaths
{
    public static IEnumerable<object[]> Available()
    {
        yield return [KernelPath.Scalar];
        if (System.Runtime.Intrinsics.X86.Avx2.IsSupported && System.Runtime.Intrinsics.X86.Fma.IsSupported)
            yield return [KernelPath.Vector256];
        if (System.Runtime.Intrinsics.X86.Avx512F.IsSupported && System.Runtime.Intrinsics.X86.Avx512BW.IsSupported)
            yield return [KernelPath.Vector512];
    }
}
