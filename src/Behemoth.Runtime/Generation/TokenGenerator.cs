using Behemoth.Package;
using System.Runtime.CompilerServices;

namespace Behemoth.Runtime.Generation;

/// <summary>
/// The generation loop at the token level: prefill the prompt once, then one token at a time through the KV cache,
/// until an end-of-sequence or stop token, the token budget or the context length.
/// </summary>
public static class TokenGenerator
{
    /// <summary>
    /// Generates token ids after <paramref name="prompt"/> (ids as the session takes them, the beginning-of-sequence
    /// token included if the model wants one), yielding each new id as it is sampled; the stop token is not yielded.
    /// Default <paramref name="options"/>: greedy, 128 new tokens.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="options"/> are out of range (see <see cref="GenerationOptions.Validate"/>).</exception>
    /// <exception cref="PromptTooLongException">The prompt does not fit the context and <see cref="GenerationOptions.Overflow"/> is <see cref="PromptOverflow.Refuse"/>.</exception>
    public static IAsyncEnumerable<int> GenerateAsync(DecoderSession session, IReadOnlyList<int> prompt, GenerationOptions? options = null,
        CancellationToken cancellationToken = default)
        => GenerateAsync(session, prompt, options, stats: null, cancellationToken);

    /// <summary>As above; <paramref name="stats"/>, when given, is filled in as the generation runs (for logging and metrics).</summary>
    public static IAsyncEnumerable<int> GenerateAsync(DecoderSession session, IReadOnlyList<int> prompt, GenerationOptions? options,
        GenerationStats? stats, CancellationToken cancellationToken = default)
        => GenerateAsync(session, prompt, options, stats, stopTokenIds: null, cancellationToken);

    /// <summary>As above, stopping at <paramref name="stopTokenIds"/> (null: the package's end-of-sequence ids) besides
    /// the options' stop tokens.</summary>
    public static async IAsyncEnumerable<int> GenerateAsync(DecoderSession session, IReadOnlyList<int> prompt, GenerationOptions? options,
        GenerationStats? stats, IEnumerable<int>? stopTokenIds, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        options ??= new GenerationOptions();
        options.Validate();
        int[] input = FitPrompt(prompt, options, session.Shape.ContextLength);
        using var generator = new Generator(session, options, stopTokenIds);
        await foreach (int token in RunAsync(generator, input, stats, cancellationToken).ConfigureAwait(false))
            yield return token;
    }

    /// <summary>
    /// Appends <paramref name="input"/> to <paramref name="generator"/> and yields each token it generates until it is
    /// done: the loop <see cref="TextGenerator"/>, the chat client, batch jobs and the CLI all run. Each step runs on the
    /// caller's thread, one ONNX Runtime run per token, with no thread hop.
    /// </summary>
    public static async IAsyncEnumerable<int> RunAsync(Generator generator, ReadOnlyMemory<int> input, GenerationStats? stats,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(generator);
        // the caller gets control back before the prefill; after that every step is synchronous
        await Task.Yield();
        var clock = stats is null ? null : System.Diagnostics.Stopwatch.StartNew();
        if (stats is not null) stats.PromptTokens = input.Length;
        if (generator.Options.MaxNewTokens == 0)
        {
            if (stats is not null) stats.StopReason = GenerationStopReason.MaxTokens;
            yield break;
        }
        generator.AppendTokens(input.Span);
        while (!generator.IsDone)
        {
            cancellationToken.ThrowIfCancellationRequested();
            int next = generator.GenerateNextToken(cancellationToken);
            if (generator.StopReason == GenerationStopReason.EndOfSequence) break;
            if (stats is not null) Produced(stats, clock!);
            yield return next;
        }
        if (stats is not null) stats.StopReason = generator.StopReason;
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
    /// <exception cref="ArgumentException">The prompt is empty (a programming error: it needs at least the beginning-of-sequence token).</exception>
    /// <exception cref="PromptTooLongException">The prompt does not fit and <see cref="GenerationOptions.Overflow"/> is <see cref="PromptOverflow.Refuse"/>.</exception>
    public static int[] FitPrompt(IReadOnlyList<int> prompt, GenerationOptions options, int context)
    {
        if (prompt.Count == 0) throw new ArgumentException("the prompt is empty; give at least the beginning-of-sequence token", nameof(prompt));
        int room = Math.Max(1, context - options.MaxNewTokens);
        if (prompt.Count <= room) return prompt.ToArray();
        if (options.Overflow == PromptOverflow.Refuse)
            throw new PromptTooLongException(prompt.Count, room, context, options.MaxNewTokens);
        // keep the first token (the beginning-of-sequence marker) and the most recent ones
        return [prompt[0], .. prompt.Skip(prompt.Count - (room - 1))];
    }
}
