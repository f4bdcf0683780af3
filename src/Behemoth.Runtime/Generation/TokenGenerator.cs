using System.Runtime.CompilerServices;

namespace Behemoth.Runtime.Generation;

/// <summary>
/// The generation loop at the token level: prefill the prompt once, then one token at a time through the KV cache,
/// until an end-of-sequence or stop token, the token budget or the context length.
/// </summary>
public static class TokenGenerator
{
    public static IAsyncEnumerable<int> GenerateAsync(DecoderSession session, IReadOnlyList<int> prompt, GenerationOptions? options = null,
        CancellationToken cancellationToken = default)
        => GenerateAsync(session, prompt, options, stats: null, cancellationToken);

    /// <summary>As above; <paramref name="stats"/>, when given, is filled in as the generation runs (for logging and metrics).</summary>
    public static async IAsyncEnumerable<int> GenerateAsync(DecoderSession session, IReadOnlyList<int> prompt, GenerationOptions? options,
        GenerationStats? stats, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        options ??= new GenerationOptions();
        options.Validate();
        int[] input = FitPrompt(prompt, options, session.Shape.ContextLength);
        // --- stats hook
        var clock = stats is null ? null : System.Diagnostics.Stopwatch.StartNew();
        if (stats is not null) stats.PromptTokens = input.Length;
        // ---
        var stop = new HashSet<int>(session.Shape.EosTokenIds.Concat(options.StopTokens));
        var sampler = new Sampler(options);
        var seen = new HashSet<int>(input);
        using var cache = session.NewCache(input.Length + options.MaxNewTokens);
        int vocab = session.Shape.VocabSize;

        float[] logits = await Task.Run(() => session.Forward(input, cache, cancellationToken), cancellationToken).ConfigureAwait(false);
        var last = logits.AsSpan((input.Length - 1) * vocab, vocab).ToArray();
        if (stats is not null && options.MaxNewTokens == 0) stats.StopReason = GenerationStopReason.MaxTokens;
        for (int produced = 0; produced < options.MaxNewTokens; produced++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            int next = sampler.Next(last, seen);
            if (stop.Contains(next))
            {
                if (stats is not null) stats.StopReason = GenerationStopReason.EndOfSequence;
                yield break;
            }
            if (stats is not null) Produced(stats, clock!);
            yield return next;
            seen.Add(next);
            if (produced + 1 == options.MaxNewTokens || cache.Length >= session.Shape.ContextLength)
            {
                if (stats is not null) stats.StopReason = produced + 1 == options.MaxNewTokens ? GenerationStopReason.MaxTokens : GenerationStopReason.ContextFull;
                yield break;
            }
            last = await Task.Run(() => session.Forward([next], cache, cancellationToken), cancellationToken).ConfigureAwait(false);
        }
    }

    // stats hook: one more token, and the time it came at
    private static void Produced(GenerationStats stats, System.Diagnostics.Stopwatch clock)
    {
        var now = clock.Elapsed;
        stats.TimeToFirstToken ??= now;
        stats.GeneratedTokens++;
        stats.DecodeTime = now - stats.TimeToFirstToken.Value;
    }

    /// <summary>The prompt as it will run: checked against the room the context leaves for the new tokens.</summary>
    public static int[] FitPrompt(IReadOnlyList<int> prompt, GenerationOptions options, int context)
    {
        if (prompt.Count == 0) throw new ArgumentException("the prompt is empty; give at least the beginning-of-sequence token", nameof(prompt));
        int room = Math.Max(1, context - options.MaxNewTokens);
        if (prompt.Count <= room) return prompt.ToArray();
        if (options.Overflow == PromptOverflow.Refuse)
            throw new ArgumentException($"the prompt has {prompt.Count} tokens, but a context of {context} with max {options.MaxNewTokens} new tokens leaves room for {room}; "
                + "shorten it, lower MaxNewTokens, or set Overflow = TruncateStart", nameof(prompt));
        // keep the first token (the beginning-of-sequence marker) and the most recent ones
        return [prompt[0], .. prompt.Skip(prompt.Count - (room - 1))];
    }
}
