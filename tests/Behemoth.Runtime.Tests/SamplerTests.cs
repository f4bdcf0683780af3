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

    [Fact]
    public void Greedy_is_the_argmax_after_the_repetition_penalty()
    {
        var sampler = new Sampler(new GenerationOptions { RepetitionPenalty = 2f });
        float[] logits = [1f, 5f, 4f, -1f];
        Assert.Equal(2, sampler.Next(logits, [1]));       // 5 / 2 = 2.5 < 4
    }

    // The algorithm the runtime had before partial selection, kept here as the oracle.
    private static int FullSort(float[] logits, GenerationOptions options, Random random)
    {
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
        double draw = random.NextDouble() * mass;
        for (int i = 0; i < cut; i++)
        {
            draw -= probs[i];
            if (draw <= 0) return order[i];
        }
        return order[cut - 1];
    }
}
