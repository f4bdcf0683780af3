using Microsoft.ML.OnnxRuntime;

namespace Behemoth.Runtime;

/// <summary>Where a session runs.</summary>
public enum ExecutionProvider
{
    /// <summary>CUDA when its libraries load, then DirectML on Windows, else CPU.</summary>
    Auto,
    /// <summary>ONNX Runtime's CPU kernels; in every native package, so always available.</summary>
    Cpu,
    /// <summary>NVIDIA GPUs through CUDA (the Microsoft.ML.OnnxRuntime.Gpu package, with CUDA and cuDNN installed); fails when they do not load.</summary>
    Cuda,
    /// <summary>Any DirectX 12 GPU on Windows (the Microsoft.ML.OnnxRuntime.DirectML package); fails elsewhere.</summary>
    DirectML,
}

/// <summary>The provider, or the ONNX Runtime native library itself, could not be used; the message says what is missing.</summary>
public sealed class ExecutionProviderException(string message, Exception? inner = null) : Behemoth.Package.BehemothException(message, inner);

/// <summary>Session options for a provider, with the fallbacks of <see cref="ExecutionProvider.Auto"/>.</summary>
public static class ExecutionProviders
{
    /// <summary>What an app that references Behemoth.Runtime without a native ONNX Runtime package is told to add.</summary>
    internal const string NativePackages = "add one native ONNX Runtime package to the app: Microsoft.ML.OnnxRuntime (CPU), "
        + "Microsoft.ML.OnnxRuntime.Gpu (CUDA, Linux and Windows) or Microsoft.ML.OnnxRuntime.DirectML (Windows); "
        + "Behemoth.Runtime references only the managed API (Microsoft.ML.OnnxRuntime.Managed)";

    /// <summary>Creates session options; <paramref name="chosen"/> is the provider actually appended.</summary>
    /// <exception cref="ExecutionProviderException">The provider cannot be used, or the ONNX Runtime native library is missing
    /// (the message names the package to add).</exception>
    public static SessionOptions Create(ExecutionProvider provider, out ExecutionProvider chosen, int deviceId = 0)
    {
        var options = LoadingNative(() => new SessionOptions());
        try
        {
            // Errors only: ONNX Runtime warns, on every load, that logits_to_keep is an initializer listed among the
            // inputs (by design: that is what makes the input optional for runtimes that do not feed it).
            options.LogSeverityLevel = OrtLoggingLevel.ORT_LOGGING_LEVEL_ERROR;
            chosen = provider switch
            {
                ExecutionProvider.Cpu => ExecutionProvider.Cpu,
                ExecutionProvider.Cuda => AppendCuda(options, deviceId, required: true),
                ExecutionProvider.DirectML => AppendDirectML(options, deviceId, required: true),
                _ => AppendCuda(options, deviceId, required: false) is ExecutionProvider.Cuda ? ExecutionProvider.Cuda
                    : OperatingSystem.IsWindows() && AppendDirectML(options, deviceId, required: false) is ExecutionProvider.DirectML ? ExecutionProvider.DirectML
                    : ExecutionProvider.Cpu,
            };
            return options;
        }
        catch
        {
            options.Dispose();
            throw;
        }
    }

    private static ExecutionProvider AppendCuda(SessionOptions options, int deviceId, bool required)
    {
        // A failed probe under Auto is expected on machines without CUDA: keep ONNX Runtime from logging it as an error.
        var env = OrtEnv.Instance();
        var level = env.EnvLogLevel;
        if (!required) env.EnvLogLevel = OrtLoggingLevel.ORT_LOGGING_LEVEL_FATAL;
        try
        {
            options.AppendExecutionProvider_CUDA(deviceId);
            return ExecutionProvider.Cuda;
        }
        catch (Exception e) when (e is OnnxRuntimeException or EntryPointNotFoundException or DllNotFoundException)
        {
            if (!required) return ExecutionProvider.Cpu;
            throw new ExecutionProviderException(
                "CUDA was requested but cannot be used: " + FirstLine(e.Message)
                + ". ONNX Runtime 1.31 needs the CUDA 13 runtime (cuBLAS, cuBLASLt) and cuDNN 9 on the library path, and the Microsoft.ML.OnnxRuntime.Gpu package.", e);
        }
        finally
        {
            env.EnvLogLevel = level;
        }
    }

    private static ExecutionProvider AppendDirectML(SessionOptions options, int deviceId, bool required)
    {
        try
        {
            options.AppendExecutionProvider_DML(deviceId);
            return ExecutionProvider.DirectML;
        }
        catch (Exception e) when (e is OnnxRuntimeException or EntryPointNotFoundException or DllNotFoundException)
        {
            if (!required) return ExecutionProvider.Cpu;
            throw new ExecutionProviderException(
                "DirectML was requested but this ONNX Runtime build has no DirectML provider (" + FirstLine(e.Message)
                + "). It needs Windows and the Microsoft.ML.OnnxRuntime.DirectML package instead of .Gpu, and a package exported with --moe decomposed.", e);
        }
    }

    /// <summary>
    /// Runs the first native call of a session (<paramref name="create"/>): when libonnxruntime cannot be loaded, the
    /// managed API throws DllNotFoundException, or TypeInitializationException around it on every later call, which
    /// says nothing of the fix; that becomes an <see cref="ExecutionProviderException"/> naming the packages to add.
    /// </summary>
    internal static T LoadingNative<T>(Func<T> create)
    {
        try
        {
            return create();
        }
        catch (Exception e) when (MissingNativeLibrary(e) is { } missing)
        {
            // the loader's first sentence names the library; the rest is generic advice on LD_DEBUG and strace
            string reason = FirstLine(missing.Message).Split(". ")[0].TrimEnd('.', ':');
            throw new ExecutionProviderException("The ONNX Runtime native library could not be loaded (" + reason + "): " + NativePackages + ".", e);
        }
    }

    /// <summary>The DllNotFoundException in <paramref name="e"/> or its inner exceptions, when the native library is what failed.</summary>
    internal static DllNotFoundException? MissingNativeLibrary(Exception e)
    {
        for (Exception? x = e; x is not null; x = x.InnerException)
            if (x is DllNotFoundException missing) return missing;
        return null;
    }

    private static string FirstLine(string message) => message.Split('\n')[0].Trim();
}
