using Behemoth.Runtime;

namespace Behemoth.Runtime.Tests;

/// <summary>
/// This test project references Behemoth.Runtime alone, which brings only the managed ONNX Runtime API: it is the app
/// that forgot the native package, so the first native call meets the real missing-library failure.
/// </summary>
public sealed class NativeLibraryTests
{
    [SkippableFact]
    public void A_missing_native_library_is_an_ExecutionProviderException_naming_the_packages_to_add()
    {
        // the first call fails loading libonnxruntime; later calls rethrow the managed API's failed type initializer
        for (int call = 0; call < 2; call++)
        {
            ExecutionProviderException e;
            try
            {
                ExecutionProviders.Create(ExecutionProvider.Cpu, out _).Dispose();
                Skip.If(true, "an ONNX Runtime native library is installed on this machine, so it loads");
                return;
            }
            catch (ExecutionProviderException caught)
            {
                e = caught;
            }
            Assert.Contains("Microsoft.ML.OnnxRuntime (CPU)", e.Message);
            Assert.Contains("Microsoft.ML.OnnxRuntime.Gpu", e.Message);
            Assert.Contains("Microsoft.ML.OnnxRuntime.DirectML", e.Message);
            Assert.NotNull(ExecutionProviders.MissingNativeLibrary(e.InnerException!));
            Assert.True(e.InnerException is DllNotFoundException or TypeInitializationException, e.InnerException!.GetType().FullName);
        }
    }

    [Fact]
    public void Other_failures_are_not_taken_for_a_missing_library()
    {
        Assert.Null(ExecutionProviders.MissingNativeLibrary(new TypeInitializationException("X", new InvalidOperationException("no"))));
        Assert.Throws<InvalidOperationException>(() => ExecutionProviders.LoadingNative<int>(() => throw new InvalidOperationException("no")));
    }
}
