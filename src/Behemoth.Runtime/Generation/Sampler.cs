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
    private float[] _keys = [];
    private double[] _weights = [];
    private readonly PriorityQueue<int, float> _heap = new();

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
        if (_weights.Length < vocab) _weights = new double[vocab];
        var w = _weights.AsSpan(0, vocab);

        // The normaliser: the sum over the top-k (selected at once), or over the whole vocabulary. Each weight
        // exp((logit - max) / T) is computed once and kept for the walks below.
        int selected = Select(logits, keep < vocab ? keep : Math.Min(FirstBatch, vocab));
        double sum = 0;
        if (keep < vocab)
            for (int i = 0; i < keep; i++) sum += w[_order[i]] = Math.Exp((logits[_order[i]] - max) / t);
        else
            for (int id = 0; id < vocab; id++) sum += w[id] = Math.Exp((logits[id] - max) / t);

        // top-p: the shortest run of most likely tokens whose probability reaches p; the draw is scaled to its mass
        int cut = keep;
        double mass = 1.0;
        if (options.TopP < 1f)
        {
            double cumulative = 0;
            for (int i = 0; i < keep; i++)
            {
                if (i == selected) selected = Grow(logits, selected, keep);
                cumulative += w[_order[i]] / sum;
                if (cumulative >= options.TopP || i + 1 == keep) { cut = i + 1; break; }
            }
            mass = cumulative;
        }

        double draw = _random.NextDouble() * mass;
        for (int i = 0; i < cut; i++)
        {
            if (i == selected) selected = Grow(logits, selected, keep);
            draw -= w[_order[i]] / sum;
            if (draw <= 0) return _order[i];
        }
        if (selected < cut) Select(logits, cut);
        return _order[cut - 1];
    }

    // more candidates when the walk passes the selected ones: eight times as many, then all that are kept
    private int Grow(ReadOnlySpan<float> logits, int selected, int keep) => Select(logits, Math.Min(keep, selected * 8));

    /// <summary>Puts the <paramref name="count"/> largest logits' ids, largest first, in _order[0..count); returns count.</summary>
    private int Select(ReadOnlySpan<float> logits, int count)
    {
        if (_order.Length < logits.Length) _order = new int[logits.Length];
        if (count * 8 >= logits.Length)
        {
            // a large share of the vocabulary: one sort of every id by descending logit (the default comparer on
            // negated keys, which sorts without a delegate call per comparison)
            if (_keys.Length < logits.Length) _keys = new float[logits.Length];
            for (int i = 0; i < logits.Length; i++) (_keys[i], _order[i]) = (-logits[i], i);
            Array.Sort(_keys, _order, 0, logits.Length);
            return count;
        }
        // a min-heap of the best `count` so far
        _heap.Clear();
        for (int i = 0; i < logits.Length; i++)
        {
            if (_heap.Count < count) _heap.Enqueue(i, logits[i]);
            else if (logits[i] > PeekPriority()) _heap.EnqueueDequeue(i, logits[i]);
        }
        for (int i = count - 1; i >= 0; i--) _order[i] = _heap.Dequeue();
        return count;
    }

    private float PeekPriority() => _heap.TryPeek(out _, out float p) ? p : float.NegativeInfinity;
}
