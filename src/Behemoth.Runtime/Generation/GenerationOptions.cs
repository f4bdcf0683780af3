namespace Behemoth.Runtime.Generation;

/// <summary>What to do with a prompt longer than the context leaves room for.</summary>
public enum PromptOverflow
{
    /// <summary>Throw, naming the prompt length and the room there is.</summary>
    Refuse,

    /// <summary>Drop the oldest prompt tokens (after the first, the beginning-of-sequence token).</summary>
    TruncateStart,
}

/// <summary>How to pick tokens and when to stop. Temperature 0 is greedy decoding.</summary>
public sealed record GenerationOptions
{
    /// <summary>The most new tokens to generate (default 128; 0 runs the prompt only).</summary>
    public int MaxNewTokens { get; init; } = 128;

    /// <summary>0: greedy (argmax). Otherwise logits are divided by it before sampling.</summary>
    public float Temperature { get; init; }

    /// <summary>Keep only the k most likely tokens (0: all).</summary>
    public int TopK { get; init; }

    /// <summary>Keep the smallest set of most likely tokens whose probability reaches p (1: all).</summary>
    public float TopP { get; init; } = 1f;

    /// <summary>Divides positive (multiplies negative) logits of tokens already in the sequence, as CTRL and Hugging Face do (1: off).</summary>
    public float RepetitionPenalty { get; init; } = 1f;

    /// <summary>Same seed, same options, same prompt → same tokens. Null: a random seed.</summary>
    public int? Seed { get; init; }

    /// <summary>Generation ends when the text contains one of these; the stop string itself is not returned.</summary>
    public IReadOnlyList<string> StopStrings { get; init; } = [];

    /// <summary>Generation ends at these tokens, besides the package's end-of-sequence tokens.</summary>
    public IReadOnlyList<int> StopTokens { get; init; } = [];

    /// <summary>What to do when the prompt leaves no room for <see cref="MaxNewTokens"/> in the context (default: refuse).</summary>
    public PromptOverflow Overflow { get; init; } = PromptOverflow.Refuse;

    /// <summary>Checks the options are in range; the generators call it before they start, an app may call it early to report bad input.</summary>
    /// <exception cref="ArgumentOutOfRangeException">A value is out of range (the message names it): negative <see cref="MaxNewTokens"/> or
    /// <see cref="TopK"/>, a negative or infinite <see cref="Temperature"/>, <see cref="TopP"/> outside (0, 1], a <see cref="RepetitionPenalty"/> not &gt; 0,
    /// an empty string among <see cref="StopStrings"/>.</exception>
    public void Validate()
    {
        if (FindOutOfRange() is var (option, value, reason)) throw new ArgumentOutOfRangeException(option, value, reason);
    }

    /// <summary>
    /// The first option out of range, its value and what it must be (for example <c>TopP</c>, <c>0</c>, <c>must be in (0, 1]</c>),
    /// or null when all are in range: what <see cref="Validate"/> throws for, for a caller that reports bad input itself.
    /// </summary>
    public (string Option, object Value, string Reason)? FindOutOfRange()
    {
        if (MaxNewTokens < 0) return (nameof(MaxNewTokens), MaxNewTokens, "must not be negative");
        if (!(Temperature >= 0) || float.IsInfinity(Temperature)) return (nameof(Temperature), Temperature, "must be a finite number ≥ 0");
        if (TopK < 0) return (nameof(TopK), TopK, "must not be negative");
        if (!(TopP > 0 && TopP <= 1)) return (nameof(TopP), TopP, "must be in (0, 1]");
        if (!(RepetitionPenalty > 0) || float.IsInfinity(RepetitionPenalty)) return (nameof(RepetitionPenalty), RepetitionPenalty, "must be a finite number > 0");
        if (StopStrings is null || StopStrings.Any(string.IsNullOrEmpty)) return (nameof(StopStrings), "", "must not hold an empty string (it would match before any text)");
        return null;
    }
}
