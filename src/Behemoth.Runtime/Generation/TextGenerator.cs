using System.Runtime.CompilerServices;
using System.Text;

namespace Behemoth.Runtime.Generation;

/// <summary>
/// Text in, streamed text out: tokenizes the prompt (with the beginning-of-sequence token), generates, and yields text
/// as soon as it is complete. Pieces that end inside a multi-byte character (byte-fallback tokens) are held back
/// until the character is whole, and text that could be the start of a stop string is held back until it is not.
/// </summary>
public static class TextGenerator
{
    /// <summary>
    /// Generates a continuation of <paramref name="prompt"/> on <paramref name="session"/>, streaming the text as it
    /// becomes final; the prompt itself is not returned. Default <paramref name="options"/>: greedy, 128 new tokens.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="options"/> are out of range (see <see cref="GenerationOptions.Validate"/>).</exception>
    /// <exception cref="Behemoth.Package.PromptTooLongException">The prompt does not fit the context and <see cref="GenerationOptions.Overflow"/> is <see cref="PromptOverflow.Refuse"/>.</exception>
    public static IAsyncEnumerable<string> GenerateAsync(DecoderSession session, Microsoft.ML.Tokenizers.Tokenizer tokenizer, string prompt,
        GenerationOptions? options = null, CancellationToken cancellationToken = default)
        => GenerateAsync(session, tokenizer, prompt, options, stats: null, cancellationToken);

    /// <summary>As above; <paramref name="stats"/>, when given, is filled in as the generation runs (for logging and metrics).</summary>
    public static IAsyncEnumerable<string> GenerateAsync(DecoderSession session, Microsoft.ML.Tokenizers.Tokenizer tokenizer, string prompt,
        GenerationOptions? options, GenerationStats? stats, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(session);
        ArgumentNullException.ThrowIfNull(tokenizer);
        var ids = new List<int>();
        if (session.Shape.BosTokenId is int bos) ids.Add(bos);
        ids.AddRange(tokenizer.EncodeToIds(prompt));
        options ??= new GenerationOptions();
        options.Validate();
        var input = TokenGenerator.FitPrompt(ids, options, session.Shape.ContextLength);
        return StreamAsync(new Generator(session, options), tokenizer, input, stats, ownsGenerator: true, cancellationToken);
    }

    /// <summary>
    /// Appends <paramref name="input"/> to <paramref name="generator"/> and streams the text of what it generates, with
    /// its options' stop strings applied, through an incremental detokenizer (<see cref="TokenizerStream"/>).
    /// </summary>
    public static IAsyncEnumerable<string> StreamAsync(Generator generator, Tokenizer tokenizer, ReadOnlyMemory<int> input, GenerationStats? stats,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        return StreamAsync(generator, tokenizer.Inner, input, stats, ownsGenerator: false, cancellationToken);
    }

    internal static async IAsyncEnumerable<string> StreamAsync(Generator generator, Microsoft.ML.Tokenizers.Tokenizer tokenizer, ReadOnlyMemory<int> input,
        GenerationStats? stats, bool ownsGenerator, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        try
        {
            var stops = generator.Options.StopStrings;
            int keepTail = stops.Count == 0 ? 0 : stops.Max(s => s.Length) - 1;
            // Decoding starts from the token before the new ones so that a leading space of the first new piece
            // survives (SentencePiece drops it at the start of a text).
            int? previous = input.Length > 0 ? input.Span[^1] : generator.Tokens.Count > 0 ? generator.Tokens[^1] : null;
            var stream = new TokenizerStream(tokenizer, previous);
            var held = new StringBuilder();     // decoded, not yet yielded
            string tail = "";                   // the end of what was yielded, where a stop string may have begun
            await foreach (int token in TokenGenerator.RunAsync(generator, input, stats, cancellationToken).ConfigureAwait(false))
            {
                held.Append(stream.Decode(token));
                string window = tail + held;
                int stopAt = FirstStop(window, stops, 0);
                if (stopAt >= 0)
                {
                    if (stats is not null) stats.StopReason = GenerationStopReason.StopString;
                    if (stopAt > tail.Length) yield return window[tail.Length..stopAt];
                    yield break;
                }
                int ready = SafeLength(window, stops) - tail.Length;
                if (ready > 0)
                {
                    string piece = held.ToString(0, ready);
                    held.Remove(0, ready);
                    tail = keepTail == 0 ? "" : (tail + piece)[Math.Max(0, tail.Length + piece.Length - keepTail)..];
                    yield return piece;
                }
            }
            held.Append(stream.Flush());
            string final = tail + held;
            int end = FirstStop(final, stops, 0) is int s && s >= 0 ? s : final.Length;
            if (end > tail.Length) yield return final[tail.Length..end].TrimEnd('\uFFFD');
        }
        finally
        {
            if (ownsGenerator) generator.Dispose();
        }
    }

    private static int FirstStop(string text, IReadOnlyList<string> stops, int from)
    {
        int first = -1;
        foreach (var s in stops)
        {
            if (s.Length == 0) continue;
            int i = text.IndexOf(s, from, StringComparison.Ordinal);
            if (i >= 0 && (first < 0 || i < first)) first = i;
        }
        return first;
    }

    /// <summary>How much of <paramref name="text"/> can be shown: not an unfinished character, not a possible stop-string start.</summary>
    private static int SafeLength(string text, IReadOnlyList<string> stops)
    {
        int end = text.Length;
        while (end > 0 && text[end - 1] == '\uFFFD') end--;      // an incomplete UTF-8 sequence decodes to U+FFFD for now
        if (end > 0 && char.IsHighSurrogate(text[end - 1])) end--;
        foreach (var s in stops)
            for (int k = Math.Min(s.Length - 1, end); k > 0; k--)
                if (string.CompareOrdinal(text, end - k, s, 0, k) == 0) { end -= k; break; }
        return end;
    }

    /// <summary>All of it at once (for batch use).</summary>
    public static async Task<string> GenerateTextAsync(DecoderSession session, Microsoft.ML.Tokenizers.Tokenizer tokenizer, string prompt, GenerationOptions? options = null,
        CancellationToken cancellationToken = default)
    {
        var sb = new StringBuilder();
        await foreach (var piece in GenerateAsync(session, tokenizer, prompt, options, cancellationToken).ConfigureAwait(false)) sb.Append(piece);
        return sb.ToString();
    }
}
