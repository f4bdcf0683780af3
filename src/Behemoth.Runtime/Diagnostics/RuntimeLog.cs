using Behemoth.Runtime.Generation;
using Microsoft.Extensions.Logging;

namespace Behemoth.Runtime.Diagnostics;

/// <summary>The runtime's log messages (source-generated), with their event ids in one place.</summary>
internal static partial class RuntimeLog
{
    [LoggerMessage(EventId = 1, EventName = "SessionOpened", Level = LogLevel.Information,
        Message = "Opened {Package} profile {Profile} on {Provider}: {Files} files, {Bytes} bytes verified, {Experts} routed experts, loaded in {LoadMilliseconds:F0} ms")]
    public static partial void SessionOpened(ILogger logger, string package, string profile, string provider, int files, long bytes, int experts, double loadMilliseconds);

    [LoggerMessage(EventId = 2, EventName = "GenerationCompleted", Level = LogLevel.Information,
        Message = "Generated {GeneratedTokens} tokens from {PromptTokens} prompt tokens on {Profile}/{Provider}: time to first token {TimeToFirstTokenMilliseconds:F1} ms, {TokensPerSecond:F1} tokens/s, stopped by {StopReason}")]
    public static partial void GenerationCompleted(ILogger logger, string profile, string provider, int promptTokens, int generatedTokens,
        double? timeToFirstTokenMilliseconds, double? tokensPerSecond, GenerationStopReason stopReason);

    [LoggerMessage(EventId = 3, EventName = "GenerationCanceled", Level = LogLevel.Debug,
        Message = "Generation on {Profile}/{Provider} canceled after {GeneratedTokens} tokens")]
    public static partial void GenerationCanceled(ILogger logger, string profile, string provider, int generatedTokens);

    [LoggerMessage(EventId = 4, EventName = "GenerationFailed", Level = LogLevel.Warning,
        Message = "Generation on {Profile}/{Provider} failed after {GeneratedTokens} tokens")]
    public static partial void GenerationFailed(ILogger logger, Exception exception, string profile, string provider, int generatedTokens);
}
