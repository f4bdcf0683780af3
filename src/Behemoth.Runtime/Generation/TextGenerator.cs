using System.Runtime.CompilerServices;
using System.Text;
using Microsoft.ML.Tokenizers;

namespace Behemoth.Runtime.Generation;

/// <summary>
/// Text in, streamed text out: tokenizes the prompt (with the beginning-of-sequence token), generates, and yields text
/// as soon as it is complete. Pieces that end inside a multi-byte character (byte-fallback tokens) are held back
/// until the character is whole, and text that could be the start of a stop string is held back until it is not.
/// </summary>
public static class TextGenerator
{
    public static IAsyncEnumerable<string> GenerateAsync(DecoderSession session, Tokenizer tokenizer, string prompt,
        GenerationOptions? options = null, CancellationToken cancellationToken = default)
        => GenerateAsync(session, tokenizer, prompt, options, stats: null, cancellationToken);

    /// <summary>As above; <paramref name="stats"/>, when given, is filled in as the generation runs (for logging and metrics).</summary>
    public static async IAsyncEnumerable<string> GenerateAsync(DecoderSession session, Tokenizer tokenizer, string prompt,
        GenerationOptions? options, GenerationStats? stats, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        options ??= new GenerationOptions();
        var ids = new List<int>();
        if (session.Shape.BosTokenId is int bos) ids.Add(bos);
        ids.AddRange(tokenizer.EncodeToIds(prompt));

        // Decoding starts from the prompt's last token so that a leading space of the first new piece survives
        // (SentencePiece drops it at the start of a text); that token's own text is cut off again.
        var generated = new List<int> { ids[^1] };
        int skip = (tokenizer.Decode(generated) ?? "").Length;
        int emitted = skip;                     // characters of the decoded text already yielded
        await foreach (int token in TokenGenerator.GenerateAsync(session, ids, options, stats, cancellationToken).ConfigureAwait(false))
        {
            generated.Add(token);
            string text = tokenizer.Decode(generated) ?? "";
            int stopAt = FirstStop(text, options.StopStrings, skip);
            if (stopAt >= 0)
            {
                if (stats is not null) stats.StopReason = GenerationStopReason.StopString;
                if (stopAt > emitted) yield return text[emitted..stopAt];
                yield break;
            }
            int ready = SafeLength(text, options.StopStrings);
            if (ready > emitted)
            {
                yield return text[emitted..ready];
                emitted = ready;
            }
        }
        string final = tokenizer.Decode(generated) ?? "";
        int end = FirstStop(final, options.StopStrings, skip) is int s && s >= 0 ? s : final.Length;
        if (end > emitted) yield return final[emitted..end].TrimEnd('\uFFFD');
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
    public static async Task<string> GenerateTextAsync(DecoderSession session, Tokenizer tokenizer, string prompt, GenerationOptions? options = null,
        CancellationToken cancellationToken = default)
    {
        var sb = new StringBuilder();
        await foreach (var piece in GenerateAsync(session, tokenizer, prompt, options, cancellationToken).ConfigureAwait(false)) sb.Append(piece);
        return sb.ToString();
    }
}
