namespace Behemoth.Runtime.Generation;

/// <summary>Picks the next token from logits: repetition penalty, then greedy or temperature / top-k / top-p sampling.</summary>
internal sealed class Sampler(GenerationOptions options)
{
    private readonly Random _random = options.Seed is int seed ? new Random(seed) : new Random();

    public int Next(Span<float> logits, IReadOnlyCollection<int> seen)
    {
        if (options.RepetitionPenalty != 1f)
            foreach (int id in seen)
                logits[id] = logits[id] > 0 ? logits[id] / options.RepetitionPenalty : logits[id] * options.RepetitionPenalty;
        if (options.Temperature == 0f) return Logits.ArgMax(logits);

        // candidates sorted by logit, cut by top-k, softmax at the temperature, cut by top-p, then one draw
        int[] order = Enumerable.Range(0, logits.Length).ToArray();
        float[] keys = logits.ToArray();
        Array.Sort(keys, order, Comparer<float>.Create((a, b) => b.CompareTo(a)));
        int keep = options.TopK > 0 ? Math.Min(options.TopK, order.Length) : order.Length;
        var probs = new double[keep];
        double max = keys[0], sum = 0;
        for (int i = 0; i < keep; i++) sum += probs[i] = Math.Exp((keys[i] - max) / options.Temperature);
        double cumulative = 0;
        int cut = keep;
        for (int i = 0; i < keep; i++)
        {
            probs[i] /= sum;
            cumulative += probs[i];
            if (cumulative >= options.TopP) { cut = i + 1; break; }
        }
        double mass = 0;
        for (int i = 0; i < cut; i++) mass += probs[i];
        double draw = _random.NextDouble() * mass;
        for (int i = 0; i < cut; i++)
        {
            draw -= probs[i];
            if (draw <= 0) return order[i];
        }
        return order[cut - 1];
    }
}
