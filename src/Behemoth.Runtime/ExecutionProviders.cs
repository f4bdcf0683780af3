using Microsoft.ML.OnnxRuntime;

namespace Behemoth.Runtime;

/// <summary>Where a session runs.</summary>
public enum ExecutionProvider
{
    /// <summary>CUDA when its libraries load, then DirectML on Windows, else CPU.</summary>
    Auto,
    Cpu,
    Cuda,
    DirectML,
}

/// <summary>The provider could not be used; the message says what is missing.</summary>
public sealed class ExecutionProviderException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>Session options for a provider, with the fallbacks of <see cref="ExecutionProvider.Auto"/>.</summary>
public static class ExecutionProviders
{
    /// <summary>Creates session options; <paramref name="chosen"/> is the provider actually appended.</summary>
    public static SessionOptions Create(ExecutionProvider provider, out ExecutionProvider chosen, int deviceId = 0)
    {
        var options = new SessionOptions();
        try
        {
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

    private static string FirstLine(string message) => message.Split('\n')[0].Trim();
}
