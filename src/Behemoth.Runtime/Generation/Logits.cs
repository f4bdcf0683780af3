namespace Behemoth.Runtime.Generation;

/// <summary>What callers read off one row of logits: the greedy token and a token's log-probability.</summary>
public static class Logits
{
    /// <summary>The index of the largest logit (the first of equal ones): the greedy choice.</summary>
    public static int ArgMax(ReadOnlySpan<float> row) => System.Numerics.Tensors.TensorPrimitives.IndexOfMax(row);

    /// <summary>log softmax(row)[target], computed in double (what perplexity sums).</summary>
    public static double LogProbability(ReadOnlySpan<float> row, int target)
    {
        double max = double.NegativeInfinity;
        foreach (float v in row) max = Math.Max(max, v);
        double sum = 0;
        foreach (float v in row) sum += Math.Exp(v - max);
        return row[target] - max - Math.Log(sum);
    }
}
