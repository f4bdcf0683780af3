namespace Behemoth.Runtime.Generation;

/// <summary>Why a generation ended.</summary>
public enum GenerationStopReason
{
    /// <summary>Not finished (yet): still running, or the caller stopped reading, cancelled, or it failed.</summary>
    None,

    /// <summary>The model produced an end-of-sequence token or one of <see cref="GenerationOptions.StopTokens"/>.</summary>
    EndOfSequence,

    /// <summary>The text reached one of <see cref="GenerationOptions.StopStrings"/>.</summary>
    StopString,

    /// <summary><see cref="GenerationOptions.MaxNewTokens"/> tokens were generated.</summary>
    MaxTokens,

    /// <summary>The sequence filled the package's context length.</summary>
    ContextFull,
}

/// <summary>
/// What one generation did, filled in by <see cref="TokenGenerator"/> and <see cref="TextGenerator"/> as it runs when
/// the caller passes one in: token counts, time to the first token, decode speed and why it stopped. It is the hook
/// for logging and metrics (see <c>Behemoth.Runtime.Diagnostics</c>); read it after the enumeration ends.
/// </summary>
/// <remarks>One instance per generation; not thread-safe.</remarks>
public sealed class GenerationStats
{
    /// <summary>Tokens run in the prefill: the prompt as it ran (after <see cref="GenerationOptions.Overflow"/>), the beginning-of-sequence token included.</summary>
    public int PromptTokens { get; internal set; }

    /// <summary>New tokens sampled, stop-string tokens included; end-of-sequence and stop tokens are not counted.</summary>
    public int GeneratedTokens { get; internal set; }

    /// <summary>From the start of the generation to the first new token (prefill plus one sampling step); null when none came.</summary>
    public TimeSpan? TimeToFirstToken { get; internal set; }

    /// <summary>From the first to the last new token: the decode phase, <see cref="GeneratedTokens"/> − 1 steps.</summary>
    public TimeSpan DecodeTime { get; internal set; }

    /// <summary>Why the generation ended; <see cref="GenerationStopReason.None"/> until it has.</summary>
    public GenerationStopReason StopReason { get; internal set; }

    /// <summary>Decode speed in tokens per second (the steps after the first token); null with fewer than two tokens.</summary>
    public double? DecodeTokensPerSecond =>
        GeneratedTokens > 1 && DecodeTime > TimeSpan.Zero ? (GeneratedTokens - 1) / DecodeTime.TotalSeconds : null;
}
