namespace Behemoth.Package;

/// <summary>
/// The one exception family Behemoth raises for input that cannot be used: a checkpoint, a package, a profile, a prompt,
/// a tokenizer file, a batch job or an execution provider. Messages are meant for a person: they name the file, the field
/// or the limit and what was expected, so a caller prints <see cref="Exception.Message"/> alone, and a caller that needs
/// the facts catches the typed subclass and reads its properties instead of parsing the message.
/// </summary>
public class BehemothException : Exception
{
    /// <summary>An error described by <paramref name="message"/>.</summary>
    /// <param name="message">What is wrong, for a person.</param>
    public BehemothException(string message) : base(message) { }

    /// <summary>An error described by <paramref name="message"/>, caused by <paramref name="inner"/>.</summary>
    /// <param name="message">What is wrong, for a person.</param>
    /// <param name="inner">The exception that caused it, if any.</param>
    public BehemothException(string message, Exception? inner) : base(message, inner) { }

    /// <summary>The file the problem was found in, when there is one.</summary>
    public string? FilePath { get; init; }
}

/// <summary>
/// A prompt that does not fit the context: <see cref="PromptTokens"/> tokens where the context of <see cref="ContextLength"/>
/// leaves <see cref="Room"/> after the tokens to generate.
/// </summary>
public sealed class PromptTooLongException : BehemothException
{
    /// <summary>A prompt of <paramref name="promptTokens"/> tokens that exceeds the <paramref name="room"/> a context of
    /// <paramref name="contextLength"/> leaves; <paramref name="maxNewTokens"/> is the number of tokens asked for.</summary>
    /// <param name="promptTokens">The prompt's length in tokens.</param>
    /// <param name="room">The most prompt tokens the context leaves room for.</param>
    /// <param name="contextLength">The session's context length in tokens.</param>
    /// <param name="maxNewTokens">The most tokens to generate after the prompt.</param>
    public PromptTooLongException(int promptTokens, int room, int contextLength, int maxNewTokens)
        : base($"the prompt has {promptTokens} tokens, but a context of {contextLength} with max {maxNewTokens} new tokens leaves room for {room}")
    {
        PromptTokens = promptTokens;
        Room = room;
        ContextLength = contextLength;
        MaxNewTokens = maxNewTokens;
    }

    /// <summary>The prompt's length in tokens.</summary>
    public int PromptTokens { get; }

    /// <summary>The most prompt tokens the context leaves room for after <see cref="MaxNewTokens"/>.</summary>
    public int Room { get; }

    /// <summary>The session's context length in tokens.</summary>
    public int ContextLength { get; }

    /// <summary>The most tokens that were to be generated after the prompt.</summary>
    public int MaxNewTokens { get; }
}
