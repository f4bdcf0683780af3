using CommunityToolkit.HighPerformance;

namespace Behemoth.Runtime.Generation;

/// <summary>
/// Perplexity of text under a model, computed one way for every caller (<c>behemoth eval</c>, the pruning table):
/// each document is [BOS] + its ids + [EOS], scored in windows of <c>window</c> predictions (each window starts a
/// fresh sequence), and the negative log-likelihoods of every predicted token are summed.
/// </summary>
public static class Perplexity
{
    /// <summary>The ids a document is scored as: the beginning-of-sequence id, the text's ids, the end-of-sequence id.</summary>
    public static int[] DocumentIds(Tokenizer tokenizer, string text)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        int bos = tokenizer.BosTokenId ?? throw new InvalidOperationException("the tokenizer has no beginning-of-sequence id to start a document with");
        int eos = tokenizer.EosTokenIds.Count > 0 ? tokenizer.EosTokenIds[0] : throw new InvalidOperationException("the tokenizer has no end-of-sequence id to end a document with");
        var ids = tokenizer.Inner.EncodeToIds(text);
        var all = new int[ids.Count + 2];
        all[0] = bos;
        for (int i = 0; i < ids.Count; i++) all[i + 1] = ids[i];
        all[^1] = eos;
        return all;
    }

    /// <summary>The windows of <paramref name="ids"/>: up to <paramref name="window"/> + 1 ids each, overlapping by one, so every id after the first is predicted once.</summary>
    public static IEnumerable<int[]> Windows(IReadOnlyList<int> ids, int window)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(window, 1);
        for (int start = 0; start < ids.Count - 1; start += window)
        {
            int length = Math.Min(window + 1, ids.Count - start);
            var w = new int[length];
            for (int i = 0; i < length; i++) w[i] = ids[start + i];
            yield return w;
        }
    }

    /// <summary>
    /// − Σ log p(window[t + 1] | window[..t]) over one window, from the logits of its first Length − 1 ids ([rows, vocab]).
    /// </summary>
    public static double NegativeLogLikelihood(ReadOnlySpan<float> logits, int vocab, ReadOnlySpan<int> window)
    {
        int rows = window.Length - 1;
        if (logits.Length < rows * vocab) throw new ArgumentException($"{logits.Length} logits for {rows} rows of {vocab}", nameof(logits));
        var grid = ReadOnlySpan2D<float>.DangerousCreate(in System.Runtime.InteropServices.MemoryMarshal.GetReference(logits), rows, vocab, 0);
        double nll = 0;
        for (int t = 0; t < rows; t++) nll -= Logits.LogProbability(grid.GetRowSpan(t), window[t + 1]);
        return nll;
    }

    /// <summary>One window through a package's session, from an empty cache.</summary>
    public static double NegativeLogLikelihood(DecoderSession session, ReadOnlySpan<int> window, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(session);
        using var cache = session.NewCache(window.Length);
        var logits = session.Forward(window[..^1], cache, cancellationToken);
        return NegativeLogLikelihood(logits, session.Shape.VocabSize, window);
    }
}
