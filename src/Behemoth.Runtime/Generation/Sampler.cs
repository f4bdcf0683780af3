using System.Numerics;
using System.Numerics.Tensors;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Behemoth.Runtime.Generation;

/// <summary>
/// Picks the next token from logits: repetition penalty, then greedy or temperature / top-k / top-p sampling, with
/// the result a full sort would give (the candidates walked from the most likely down) but without sorting.
/// </summary>
/// <remarks>
/// Sorting the vocabulary cost more than the model's run on a small model (behemoth-nano's nucleus at T 0.8, top-p 0.9
/// holds hundreds of tokens). Instead: one vectorised pass for the weights; the tokens that can be in the nucleus
/// (those heavier than (1 - p) * sum / vocab: the rest weigh less than 1 - p together) picked with one compare per
/// vector; top-k by quickselect; then top-p and the draw, both "where does the running probability, most likely
/// first, reach x?", answered by bucketing the candidates by logit and sorting only the bucket x falls in. Buffers
/// are kept between calls: a step allocates nothing.
/// </remarks>
internal sealed class Sampler(GenerationOptions options)
{
    // below this many candidates a range is insertion-sorted
    private const int SmallRange = 24;
    // logit buckets of the candidates: the one the running weight crosses in is the only one sorted
    private const int Buckets = 256;

    private readonly double[] _bucketMass = new double[Buckets];
    private byte[] _bucketOf = [];
    private Candidate[] _members = [];

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
        double total = Weights(logits, options.Temperature, w);

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
            sum = total;
            float floor = options.TopP < 1f ? (float)((1 - options.TopP) * sum / vocab) : 0f;
            candidates = candidates[..Heavier(logits, w, floor, candidates)];
        }

        return Draw(candidates, sum);
    }

    /// <summary>
    /// top-p and the draw over <paramref name="candidates"/> (total weight <paramref name="sum"/>), with the result of
    /// walking them most likely first: bucketed by logit (a higher bucket never holds a likelier token), the running
    /// weight is found per bucket, and only the bucket it crosses in is sorted and walked.
    /// </summary>
    private int Draw(Span<Candidate> candidates, double sum)
    {
        float high = float.NegativeInfinity, low = float.PositiveInfinity;
        foreach (var c in candidates) (high, low) = (Math.Max(high, c.Logit), Math.Min(low, c.Logit));
        float scale = high > low ? (Buckets - 1) / (high - low) : 0f;
        if (_bucketOf.Length < candidates.Length) (_bucketOf, _members) = (new byte[candidates.Length], new Candidate[candidates.Length]);
        Array.Clear(_bucketMass);
        for (int i = 0; i < candidates.Length; i++)
        {
            int b = Math.Min(Buckets - 1, (int)((high - candidates[i].Logit) * scale));
            _bucketOf[i] = (byte)b;
            _bucketMass[b] += candidates[i].Weight;
        }

        // top-p: the shortest run of most likely tokens whose probability reaches p, cut inside bucket `cut`
        int cut = Buckets - 1, kept = int.MaxValue;
        double mass = sum;
        Span<Candidate> members = default;
        if (options.TopP < 1f)
        {
            double target = options.TopP * sum, before = 0;
            for (int b = 0; b < Buckets; b++)
            {
                if (before + _bucketMass[b] < target && b < Buckets - 1) { before += _bucketMass[b]; continue; }
                members = Members(candidates, b);
                kept = members.Length;
                for (int k = 0; k < members.Length; k++)
                {
                    before += members[k].Weight;
                    if (before >= target) { kept = k + 1; break; }
                }
                (cut, mass) = (b, before);
                break;
            }
        }

        // the draw, within the nucleus
        double draw = _random.NextDouble() * mass, running = 0;
        for (int b = 0; b <= cut; b++)
        {
            bool last = b == cut;
            if (!last && running + _bucketMass[b] < draw) { running += _bucketMass[b]; continue; }
            var walk = last && !members.IsEmpty ? members : Members(candidates, b);
            int end = last ? Math.Min(kept, walk.Length) : walk.Length;
            for (int k = 0; k < end; k++)
            {
                running += walk[k].Weight;
                if (running >= draw) return walk[k].Id;
            }
            if (end > 0 && (last || b == Buckets - 1)) return walk[end - 1].Id;     // rounding left the draw just past the end
        }
        return candidates[0].Id;        // unreachable: the nucleus is never empty
    }

    // the candidates of bucket b, most likely first
    private Span<Candidate> Members(ReadOnlySpan<Candidate> candidates, int b)
    {
        int n = 0;
        for (int i = 0; i < candidates.Length; i++)
            if (_bucketOf[i] == b) _members[n++] = candidates[i];
        var members = _members.AsSpan(0, n);
        if (n <= SmallRange) InsertionSort(members);
        else members.Sort(static (x, y) => y.Logit.CompareTo(x.Logit));
        return members;
    }

    /// <summary>
    /// The unnormalised probabilities exp((logit - max) / temperature) in float (probabilities need no more), by
    /// TensorPrimitives' vectorised kernels; returns their sum, accumulated in double.
    /// </summary>
    internal static double Weights(ReadOnlySpan<float> logits, float temperature, Span<float> weights)
    {
        float max = TensorPrimitives.Max(logits);
        TensorPrimitives.Subtract(logits, max, weights);
        TensorPrimitives.Multiply(weights, 1f / temperature, weights);
        TensorPrimitives.Exp(weights, weights);
        int i = 0, width = Vector<float>.Count;
        var total = Vector<double>.Zero;
        for (; i + width <= weights.Length; i += width)
        {
            Vector.Widen(new Vector<float>(weights.Slice(i, width)), out var low, out var high);
            total += low + high;
        }
        double sum = Vector.Sum(total);
        for (; i < weights.Length; i++) sum += weights[i];
        return sum;
    }

    /// <summary>The candidates whose weight is at least <paramref name="floor"/>, in vocabulary order; returns how many.</summary>
    private static int Heavier(ReadOnlySpan<float> logits, ReadOnlySpan<float> w, float floor, Span<Candidate> candidates)
    {
        int n = 0, i = 0;
        // one compare per vector of weights, then only the set bits of the mask are visited: the cost is the
        // vocabulary's vectors plus the candidates kept, not a branch per token (128-bit vectors: SSE and NEON alike)
        if (Vector128.IsHardwareAccelerated)
        {
            var limit = Vector128.Create(floor);
            ref float start = ref MemoryMarshal.GetReference(w);
            for (; i + Vector128<float>.Count <= w.Length; i += Vector128<float>.Count)
                for (uint bits = Vector128.GreaterThanOrEqual(Vector128.LoadUnsafe(ref start, (nuint)i), limit).ExtractMostSignificantBits(); bits != 0; bits &= bits - 1)
                {
                    int j = i + BitOperations.TrailingZeroCount(bits);
                    candidates[n++] = new(logits[j], w[j], j);
                }
        }
        for (; i < w.Length; i++)
            if (w[i] >= floor) candidates[n++] = new(logits[i], w[i], i);
        return n;
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
