namespace Behemoth.Samples.GlassesCompanion;

/// <summary>What the glasses ask for; each is one plain-text prompt format the model completes on one line.</summary>
public enum GlassesMode
{
    /// <summary>Live translation English → Italian, in behemoth-nano's own training format.</summary>
    Translate,

    /// <summary>A short answer to a question.</summary>
    Answer,

    /// <summary>A one-line summary of a caption.</summary>
    Summary,
}

public static class Modes
{
    public static bool TryParse(string? name, out GlassesMode mode)
    {
        switch (name?.Trim().ToLowerInvariant())
        {
            case "translate" or "translation": mode = GlassesMode.Translate; return true;
            case "answer" or "question": mode = GlassesMode.Answer; return true;
            case "summary" or "summarize" or "caption": mode = GlassesMode.Summary; return true;
            default: mode = default; return false;
        }
    }

    public static string Name(GlassesMode mode) => mode switch
    {
        GlassesMode.Translate => "translate",
        GlassesMode.Answer => "answer",
        _ => "summary",
    };

    /// <summary>The prompt for <paramref name="text"/>; line breaks in the text become spaces, so the answer line is
    /// the only line the model writes after the label.</summary>
    public static string Prompt(GlassesMode mode, string text)
    {
        string line = string.Join(' ', text.Split(['\r', '\n'], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
        return mode switch
        {
            GlassesMode.Translate => $"English: {line}\nItalian:",
            GlassesMode.Answer => $"Question: {line}\nAnswer:",
            _ => $"Text: {line}\nSummary:",
        };
    }

    /// <summary>Default token budget of a mode (the app caps it at <see cref="GlassesOptions.MaxNewTokens"/>).</summary>
    public static int DefaultMaxTokens(GlassesMode mode) => mode switch
    {
        GlassesMode.Translate => 48,
        GlassesMode.Answer => 32,
        _ => 40,
    };
}
