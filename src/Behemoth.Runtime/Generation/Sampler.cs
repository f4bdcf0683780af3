using System.Numerics;
using System.Numerics.Tensors;

namespace Behemoth.Runtime.Generation;

/// <summary>
/// Picks the next token from logits: repetition penalty, then greedy or temperature / top-k / top-p sampling, with
/// the result a full sort would give (the candidates walked from the most likely down) but without sorting.
/// </summary>
/// <remarks>
/// top-p and the draw are both "where does the running probability, most likely first, reach x?". A weighted
/// quickselect answers that in expected linear time: partition the candidates around a pivot logit and go into the
/// side the running mass crosses x in. On a flat distribution the nucleus holds thousands of tokens, where sorting them
/// cost more than the model's run on a small model. Buffers are kept between calls: a step allocates nothing.
/// </remarks>
internal sealed class Sampler(GenerationOptions options)
{
    // below this many candidates a range is insertion-sorted and walked
    private const int SmallRange = 24;

    private readonly Random _random = options.Seed is int seed ? new Random(seed) : new Random();
    private Candidate[] _candidates = [];
    private float[] _weights = [];

    // the weight travels with its candidate, so the partitions below read memory in order
    private record struct Candidate(float Logit, float Weight, int Id);

    /// <summary>The next token; <paramref name="logits"/> is scratch (the repetition penalty is applied in place).</summary>
    public int Next(Span<float> logits, IReadOnlyCollection<int> seen)
    {
        if (options.RepetitionPenalty != 1f)
            foreach (int id in seen)
                logits[id] = logits[id] > 0 ? logits[id] / options.RepetitionPenalty : logits[id] * options.RepetitionPenalty;
        if (options.Temperature == 0f) return Logits.ArgMax(logits);

        int vocab = logits.Length;
        if (_candidates.Length < vocab) (_candidates, _weights) = (new Candidate[vocab], new float[vocab]);
        var candidates = _candidates.AsSpan(0, vocab);
        var w = _weights.AsSpan(0, vocab);
        Weights(logits, options.Temperature, w);

        int keep = options.TopK > 0 ? Math.Min(options.TopK, vocab) : vocab;
        double sum;
        if (keep < vocab)
        {
            // top-k: the k largest, in no order, at the front
            for (int i = 0; i < vocab; i++) candidates[i] = new(logits[i], w[i], i);
            SelectLargest(candidates, keep);
            candidates = candidates[..keep];
            sum = Weight(candidates);
        }
        else
        {
            // Tokens lighter than (1 - p) * sum / vocab weigh less than 1 - p all together, so the most likely tokens
            // reach p before any of them: the nucleus is among the rest. On a peaked distribution that is a handful.
            sum = SumAsDouble(w);
            float floor = options.TopP < 1f ? (float)((1 - options.TopP) * sum / vocab) : 0f;
            candidates = candidates[..Heavier(logits, w, floor, candidates)];
        }

        // top-p: the shortest run of most likely tokens whose probability reaches p (it ends up at the front)
        double mass = sum;
        if (options.TopP < 1f)
        {
            int last = Crossing(candidates, options.TopP * sum, out mass);
            candidates = candidates[..(last + 1)];
        }
        int drawn = Crossing(candidates, _random.NextDouble() * mass, out _);
        return candidates[drawn].Id;
    }

    /// <summary>
    /// The unnormalised probabilities exp((logit - max) / temperature), in float and vectorised (probabilities need no
    /// more: the sums over them are taken in double).
    /// </summary>
    internal static void Weights(ReadOnlySpan<float> logits, float temperature, Span<float> weights)
    {
        float max = TensorPrimitives.Max(logits);
        TensorPrimitives.Subtract(logits, max, weights);
        TensorPrimitives.Divide(weights, temperature, weights);
        TensorPrimitives.Exp(weights, weights);
    }

    /// <summary>The candidates whose weight is at least <paramref name="floor"/>, in vocabulary order; returns how many.</summary>
    private static int Heavier(ReadOnlySpan<float> logits, ReadOnlySpan<float> w, float floor, Span<Candidate> candidates)
    {
        int n = 0, i = 0, width = Vector<float>.Count;
        var limit = new Vector<float>(floor);
        for (; i + width <= w.Length; i += width)
        {
            // whole vectors below the floor are skipped without a branch per token
            if (!Vector.GreaterThanOrEqualAny(new Vector<float>(w.Slice(i, width)), limit)) continue;
            for (int j = i; j < i + width; j++)
                if (w[j] >= floor) candidates[n++] = new(logits[j], w[j], j);
        }
        for (; i < w.Length; i++)
            if (w[i] >= floor) candidates[n++] = new(logits[i], w[i], i);
        return n;
    }

    /// <summary>The sum of float weights, accumulated in double.</summary>
    private static double SumAsDouble(ReadOnlySpan<float> w)
    {
        int i = 0, width = Vector<float>.Count;
        var total = Vector<double>.Zero;
        for (; i + width <= w.Length; i += width)
        {
            Vector.Widen(new Vector<float>(w.Slice(i, width)), out var low, out var high);
            total += low + high;
        }
        double sum = Vector.Sum(total);
        for (; i < w.Length; i++) sum += w[i];
        return sum;
    }

    /// <summary>
    /// The position of the candidate at which the running weight, most likely first, reaches <paramref name="target"/>
    /// (the last one if rounding leaves it short). On return every candidate before that position is more likely (or
    /// as likely), every one after less (or as), and <paramref name="reached"/> is the weight up to and including it.
    /// </summary>
    private static int Crossing(Span<Candidate> candidates, double target, out double reached)
    {
        int lo = 0, hi = candidates.Length;
        double before = 0;       // weight of candidates[0..lo), all more likely than the rest
        while (hi - lo > SmallRange)
        {
            var (greaterEnd, equalEnd) = Partition(candidates[lo..hi], Pivot(candidates[lo..hi]));
            (greaterEnd, equalEnd) = (greaterEnd + lo, equalEnd + lo);
            double greater = Weight(candidates[lo..greaterEnd]);
            if (before + greater >= target && greaterEnd > lo) { hi = greaterEnd; continue; }
            before += greater;
            // ties: walked in the order they lie (a sort leaves equal logits in no particular order either)
            for (int i = greaterEnd; i < equalEnd; i++)
            {
                before += candidates[i].Weight;
                if (before >= target || i + 1 == candidates.Length) { reached = before; return i; }
            }
            lo = equalEnd;
        }
        InsertionSort(candidates[lo..hi]);
        for (int i = lo; i < hi; i++)
        {
            before += candidates[i].Weight;
            if (before >= target || i + 1 == hi) { reached = before; return i; }
        }
        reached = before;
        return hi - 1;
    }

    /// <summary>Moves the <paramref name="count"/> largest logits to the front (in no order); ties at the cut fall either way.</summary>
    private static void SelectLargest(Span<Candidate> candidates, int count)
    {
        int lo = 0, hi = candidates.Length;
        while (hi - lo > SmallRange)
        {
            var (greaterEnd, equalEnd) = Partition(candidates[lo..hi], Pivot(candidates[lo..hi]));
            (greaterEnd, equalEnd) = (greaterEnd + lo, equalEnd + lo);
            if (count < greaterEnd) hi = greaterEnd;
            else if (count <= equalEnd) return;
            else lo = equalEnd;
        }
        InsertionSort(candidates[lo..hi]);
    }

    /// <summary>Three-way partition: [logit &gt; pivot][== pivot][&lt; pivot]; returns the ends of the first two parts.</summary>
    private static (int GreaterEnd, int EqualEnd) Partition(Span<Candidate> c, float pivot)
    {
        int greater = 0, i = 0, less = c.Length;
        while (i < less)
        {
            float v = c[i].Logit;
            if (v > pivot) (c[i], c[greater]) = (c[greater++], c[i++]);
            else if (v < pivot) (c[i], c[less - 1]) = (c[--less], c[i]);
            else i++;
        }
        return (greater, less);
    }

    // the median of three spread-out logits: keeps partitions balanced on sorted or clustered input
    private static float Pivot(ReadOnlySpan<Candidate> c)
    {
        float a = c[0].Logit, b = c[c.Length / 2].Logit, d = c[^1].Logit;
        return Math.Max(Math.Min(a, b), Math.Min(Math.Max(a, b), d));
    }

    private static double Weight(ReadOnlySpan<Candidate> c)
    {
        double sum = 0;
        foreach (var x in c) sum += x.Weight;
        return sum;
    }

    private static void InsertionSort(Span<Candidate> c)
    {
        for (int i = 1; i < c.Length; i++)
        {
            var x = c[i];
            int j = i - 1;
            for (; j >= 0 && c[j].Logit < x.Logit; j--) c[j + 1] = c[j];
            c[j + 1] = x;
        }
    }
}
