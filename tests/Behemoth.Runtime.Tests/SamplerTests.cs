using Behemoth.Runtime.Generation;

namespace Behemoth.Runtime.Tests;

/// <summary>
/// The sampler's partial selection against the plain algorithm it replaces (sort the whole vocabulary, cut by top-k
/// and top-p, one draw in sorted order): the same seed picks the same tokens.
/// </summary>
public class SamplerTests
{
    [Theory]
    [InlineData(0.7f, 0, 1f)]
    [InlineData(1.0f, 40, 1f)]
    [InlineData(0.8f, 0, 0.9f)]
    [InlineData(1.3f, 50, 0.95f)]
    [InlineData(0.5f, 5000, 0.5f)]
    [InlineData(2.0f, 0, 0.999f)]
    public void Partial_selection_picks_what_a_full_sort_picks(float temperature, int topK, float topP)
    {
        var options = new GenerationOptions { Temperature = temperature, TopK = topK, TopP = topP, Seed = 7 };
        var sampler = new Sampler(options);
        var reference = new Random(7);
        var data = new Random(99);
        const int vocab = 32_000;
        for (int step = 0; step < 300; step++)
        {
            var logits = new float[vocab];
            for (int i = 0; i < vocab; i++) logits[i] = (float)(data.NextDouble() * 12 - 6 + (i % 97 == 0 ? 4 : 0));
            int expected = FullSort(logits, options, reference);
            Assert.Equal(expected, sampler.Next(logits.ToArray(), []));
        }
    }

    [Theory]
    [InlineData(1f, 0.7f, 0)]
    [InlineData(0.5f, 1f, 0)]
    [InlineData(1f, 0.95f, 700)]
    public void Tied_logits_are_drawn_in_proportion_to_their_probability(float temperature, float topP, int topK)
    {
        // Five levels of logits, 400 tokens each, in shuffled order: the partitions meet long runs of ties. Whatever
        // order ties are walked in, each level must come out as often as its share of the (cut) distribution.
        const int levels = 5, perLevel = 400, draws = 40_000;
        var shuffle = new Random(3);
        var logits = Enumerable.Range(0, levels * perLevel).Select(i => (float)(i % levels)).OrderBy(_ => shuffle.Next()).ToArray();
        var options = new GenerationOptions { Temperature = temperature, TopP = topP, TopK = topK, Seed = 11 };
        var sampler = new Sampler(options);
        var counts = new int[levels];
        for (int d = 0; d < draws; d++) counts[(int)logits[sampler.Next(logits.ToArray(), [])]]++;

        // expected: sort levels high to low; keep top-k tokens; the nucleus takes whole levels, then part of the level
        // it ends in (ties there are cut anywhere, so that level's count is whatever reaches p)
        var weight = Enumerable.Range(0, levels).Select(l => Math.Exp(l / temperature)).ToArray();
        var kept = new double[levels];
        int left = topK > 0 ? topK : levels * perLevel;
        for (int l = levels - 1; l >= 0; l--) left -= (int)(kept[l] = Math.Min(perLevel, left));
        double total = Enumerable.Range(0, levels).Sum(l => kept[l] * weight[l]), need = topP * total, mass = 0;
        var share = new double[levels];
        for (int l = levels - 1; l >= 0 && mass < need; l--)
        {
            double tokens = Math.Min(kept[l], Math.Ceiling((need - mass) / weight[l] - 1e-9));
            share[l] = tokens * weight[l];
            mass += share[l];
        }
        for (int l = 0; l < levels; l++)
        {
            double p = share[l] / mass, expected = p * draws, sigma = Math.Sqrt(draws * p * (1 - p));
            Assert.True(Math.Abs(counts[l] - expected) <= 5 * sigma + 1, $"level {l}: {counts[l]} drawn, {expected:F0} expected");
        }
    }

    [Fact]
    public void Greedy_is_the_argmax_after_the_repetition_penalty()
    {
        var sampler = new Sampler(new GenerationOptions { RepetitionPenalty = 2f });
        float[] logits = [1f, 5f, 4f, -1f];
        Assert.Equal(2, sampler.Next(logits, [1]));       // 5 / 2 = 2.5 < 4
    }

    // The algorithm the runtime had before partial selection, kept here as the oracle (on the sampler's own float
    // weights: what is checked is which token the selection finds, not how exp rounds).
    private static int FullSort(float[] logits, GenerationOptions options, Random random)
    {
        int[] order = Enumerable.Range(0, logits.Length).ToArray();
        float[] keys = logits.ToArray();
        var weights = new float[logits.Length];
        _ = Sampler.Weights(logits, options.Temperature, weights);
        Array.Sort(keys, order, Comparer<float>.Create((a, b) => b.CompareTo(a)));
        int keep = options.TopK > 0 ? Math.Min(options.TopK, order.Length) : order.Length;
        var probs = new double[keep];
        double sum = 0;
        for (int i = 0; i < keep; i++) sum += probs[i] = weights[order[i]];
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
        double draw = random.NextDouble() * mass;
        for (int i = 0; i < cut; i++)
        {
            draw -= probs[i];
            if (draw <= 0) return order[i];
        }
        return order[cut - 1];
    }
}
