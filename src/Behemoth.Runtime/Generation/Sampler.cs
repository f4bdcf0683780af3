namespace Behemoth.Runtime.Generation;

/// <summary>
/// Picks the next token from logits: repetition penalty, then greedy or temperature / top-k / top-p sampling. The
/// candidates are walked from the most likely down, as a full sort would order them, but only as far as the draw
/// needs: the most likely few are selected (partial selection), and more only when the draw goes past them. Buffers
/// are kept between calls, so a step allocates nothing vocabulary-sized.
/// </summary>
internal sealed class Sampler(GenerationOptions options)
{
    private const int FirstBatch = 64;

    private readonly Random _random = options.Seed is int seed ? new Random(seed) : new Random();
    private int[] _order = [];

    /// <summary>The next token; <paramref name="logits"/> is scratch (the repetition penalty is applied in place).</summary>
    public int Next(Span<float> logits, IReadOnlyCollection<int> seen)
    {
        if (options.RepetitionPenalty != 1f)
            foreach (int id in seen)
                logits[id] = logits[id] > 0 ? logits[id] / options.RepetitionPenalty : logits[id] * options.RepetitionPenalty;
        if (options.Temperature == 0f) return Logits.ArgMax(logits);

        int vocab = logits.Length;
        int keep = options.TopK > 0 ? Math.Min(options.TopK, vocab) : vocab;
        float max = logits[Logits.ArgMax(logits)];
        double t = options.Temperature;

        // The normaliser: the sum over the top-k (selected at once), or over the whole vocabulary.
        int selected = Select(logits, keep < vocab ? keep : Math.Min(FirstBatch, vocab));
        double sum = 0;
        if (keep < vocab)
            for (int i = 0; i < keep; i++) sum += Math.Exp((logits[_order[i]] - max) / t);
        else
            for (int id = 0; id < vocab; id++) sum += Math.Exp((logits[id] - max) / t);

        // top-p: the shortest run of most likely tokens whose probability reaches p; the draw is scaled to its mass
        int cut = keep;
        double mass = 1.0;
        if (options.TopP < 1f)
        {
            double cumulative = 0;
            for (int i = 0; i < keep; i++)
            {
                if (i == selected) selected = Select(logits, Math.Min(keep, selected * 4));
                cumulative += Math.Exp((logits[_order[i]] - max) / t) / sum;
                if (cumulative >= options.TopP || i + 1 == keep) { cut = i + 1; break; }
            }
            mass = cumulative;
        }

        double draw = _random.NextDouble() * mass;
        for (int i = 0; i < cut; i++)
        {
            if (i == selected) selected = Select(logits, Math.Min(keep, selected * 4));
            draw -= Math.Exp((logits[_order[i]] - max) / t) / sum;
            if (draw <= 0) return _order[i];
        }
        if (selected < cut) Select(logits, cut);
        return _order[cut - 1];
    }

    /// <summary>Puts the <paramref name="count"/> largest logits' ids, largest first, in _order[0..count); returns count.</summary>
    private int Select(ReadOnlySpan<float> logits, int count)
    {
        if (_order.Length < count)
        {
            _order = new int[Math.Max(count, 2 * _order.Length)];
        }
        if (count * 4 >= logits.Length)
        {
            // most of the vocabulary: a full sort is as cheap
            var all = new int[logits.Length];
            for (int i = 0; i < all.Length; i++) all[i] = i;
            var keys = logits.ToArray();
            Array.Sort(keys, all, Comparer<float>.Create((a, b) => b.CompareTo(a)));
            all.AsSpan(0, count).CopyTo(_order);
            return count;
        }
        // a min-heap of the best `count` so far (ties keep the lower id, as the stable order of a sort would)
        var heap = new PriorityQueue<int, (float, int)>(count + 1, Comparer<(float Logit, int Id)>.Create(
            (a, b) => a.Logit != b.Logit ? a.Logit.CompareTo(b.Logit) : b.Id.CompareTo(a.Id)));
        for (int i = 0; i < logits.Length; i++)
        {
            if (heap.Count < count) heap.Enqueue(i, (logits[i], i));
            else if (heap.TryPeek(out _, out var worst) && (logits[i] > worst.Item1))
                heap.EnqueueDequeue(i, (logits[i], i));
        }
        for (int i = count - 1; i >= 0; i--) _order[i] = heap.Dequeue();
        return count;
    }
}
