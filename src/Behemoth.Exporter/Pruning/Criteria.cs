using System.Numerics.Tensors;
using Behemoth.Reference;
using Behemoth.Reference.Blocks;

namespace Behemoth.Exporter.Pruning;

/// <summary>How experts are ranked for pruning.</summary>
public enum PruningCriterion
{
    /// <summary>Share of calibration tokens routed to the expert.</summary>
    Frequency,

    /// <summary>REAP: mean over the tokens routed to the expert of gate weight × ‖expert output‖.</summary>
    Reap,

    /// <summary>Greedy removal of the expert whose loss least increases the layer's output error on calibration inputs (arXiv 2402.14800).</summary>
    Reconstruction,

    /// <summary>A seeded random order: the baseline every criterion must beat.</summary>
    Random,
}

/// <summary>
/// Per MoE layer, an importance score per routed expert (higher = kept first), normalised to sum 1 within the layer so
/// that a budget can be shared between layers by comparing scores.
/// </summary>
public static class Criteria
{
    public static Dictionary<int, double[]> Scores(PruningCriterion criterion, IReadOnlyDictionary<int, LayerStats> stats, int seed = 1234,
        Func<int, ReconstructionInputs>? reconstruction = null)
    {
        var result = new Dictionary<int, double[]>();
        foreach (var (layer, s) in stats)
        {
            double[] raw = criterion switch
            {
                PruningCriterion.Frequency => s.Frequency.ToArray(),
                PruningCriterion.Reap => s.Reap.Zip(s.Frequency, (r, f) => f > 0 ? r : 0).ToArray(),
                PruningCriterion.Random => RandomScores(s.Frequency.Length, seed + layer),
                PruningCriterion.Reconstruction => GreedyReconstruction(reconstruction?.Invoke(layer)
                    ?? throw new InvalidOperationException("the reconstruction criterion needs calibration activations")),
                _ => throw new ArgumentOutOfRangeException(nameof(criterion)),
            };
            double sum = raw.Sum();
            result[layer] = sum > 0 ? raw.Select(v => v / sum).ToArray() : raw.Select(_ => 1.0 / raw.Length).ToArray();
        }
        return result;
    }

    private static double[] RandomScores(int experts, int seed)
    {
        var order = Enumerable.Range(0, experts).ToArray();
        new Random(seed).Shuffle(order);
        var scores = new double[experts];
        for (int i = 0; i < experts; i++) scores[order[i]] = i + 1;
        return scores;
    }

    /// <summary>
    /// Removes experts one at a time, each time the one whose removal (re-routing its tokens among the rest) adds the
    /// least weighted squared error to the layer's routed output; an expert's score is the error after its removal
    /// (made non-decreasing along the removal order), so the last ones removed score highest.
    /// </summary>
    internal static double[] GreedyReconstruction(ReconstructionInputs inputs)
    {
        int e = inputs.Experts, n = inputs.Tokens;
        var kept = Enumerable.Repeat(true, e).ToArray();
        var current = new (float[] Y, int[] Experts)[n];
        var errors = new double[n];
        for (int t = 0; t < n; t++)
        {
            current[t] = inputs.Output(t, kept);
            errors[t] = inputs.Error(t, current[t].Y);
        }
        double total = errors.Sum();
        var scores = new double[e];
        double floor = 1e-12;
        for (int step = 0; step < e - inputs.TopK; step++)
        {
            int best = -1;
            double bestTotal = double.PositiveInfinity;
            List<int>? bestTokens = null;
            (float[] Y, int[] Experts)[]? bestOutputs = null;
            foreach (int c in Enumerable.Range(0, e).Where(i => kept[i]))
            {
                kept[c] = false;
                // tokens routed to c change; with a plain softmax over the kept experts every token's weights change
                var affected = inputs.EveryTokenChanges ? Enumerable.Range(0, n).ToList()
                    : Enumerable.Range(0, n).Where(t => current[t].Experts.Contains(c)).ToList();
                double candidate = total;
                var outputs = new (float[] Y, int[] Experts)[affected.Count];
                for (int i = 0; i < affected.Count; i++)
                {
                    int t = affected[i];
                    outputs[i] = inputs.Output(t, kept);
                    candidate += inputs.Error(t, outputs[i].Y) - errors[t];
                }
                kept[c] = true;
                if (candidate < bestTotal) (best, bestTotal, bestTokens, bestOutputs) = (c, candidate, affected, outputs);
            }
            kept[best] = false;
            for (int i = 0; i < bestTokens!.Count; i++)
            {
                int t = bestTokens[i];
                current[t] = bestOutputs![i];
                errors[t] = inputs.Error(t, current[t].Y);
            }
            total = bestTotal;
            floor = Math.Max(floor, total);
            scores[best] = floor;
        }
        // the experts never removed are the most important
        double top = floor * 2 + 1e-9;
        for (int i = 0; i < e; i++) if (kept[i]) scores[i] = top;
        return scores;
    }
}

/// <summary>
/// One layer's calibration inputs for the reconstruction criterion and refit: router logits, every expert's output
/// on every token (so re-routing needs no recomputation), the full layer's routed output and per-token weights.
/// </summary>
public sealed class ReconstructionInputs
{
    private readonly MoeLayerMath _math;
    private readonly float[] _logits;
    private readonly float[][] _expertOut;   // [expert][token·hidden]: f_e(x) (softmax routers) or f_e(σ(l_e)·x) (Llama 4)
    private readonly float[][] _target;      // full layer routed output per token
    private readonly double[] _weight;
    private readonly List<Routing>[] _routes;

    /// <param name="target">The output to fit, [tokens, hidden]; by default the full layer's routed output on <paramref name="x"/>.</param>
    internal ReconstructionInputs(MoeLayerMath math, float[] x, double[] tokenWeights, float[]? target = null)
    {
        _math = math;
        int h = math.Hidden, n = tokenWeights.Length;
        Tokens = n;
        X = x;
        _weight = tokenWeights;
        _logits = math.Logits(x);
        _expertOut = new float[math.Experts][];
        for (int e = 0; e < math.Experts; e++)
        {
            var gates = new float[n];
            for (int t = 0; t < n; t++)
                gates[t] = math.ScalesInput ? (float)(1 / (1 + Math.Exp(-_logits[t * math.Experts + e]))) : 1f;
            _expertOut[e] = MoeLayerMath.Contribution(math.Weights(e), x, gates, math.ScalesInput, h, math.Moe.ExpertIntermediate);
        }
        _routes = new List<Routing>[n];
        for (int t = 0; t < n; t++)
        {
            _routes[t] = [];
            Router.Route(math.Moe, _logits.AsSpan(t * math.Experts, math.Experts), t, _routes[t]);
        }
        _target = target is null ? Enumerable.Range(0, n).Select(t => Combine(_routes[t], t)).ToArray()
            : Enumerable.Range(0, n).Select(t => target.AsSpan(t * h, h).ToArray()).ToArray();
    }

    public int Experts => _math.Experts;
    public int TopK => _math.Moe.TopK;
    public int Tokens { get; }
    public float[] X { get; }
    public float[] Logits => _logits;
    public IReadOnlyList<float[]> Target => _target;
    public IReadOnlyList<double> TokenWeights => _weight;

    /// <summary>A plain softmax over the kept experts (no top-k renormalisation): removing any expert changes every token's weights.</summary>
    public bool EveryTokenChanges => !_math.ScalesInput && !_math.Moe.NormTopKProb;

    /// <summary>Token t's routed output with only the kept experts, and the experts it went to.</summary>
    public (float[] Y, int[] Experts) Output(int t, bool[] kept)
    {
        var routes = Route(t, kept);
        return (Combine(routes, t), routes.Select(r => r.Expert).ToArray());
    }

    /// <summary>Expert e's output on token t (before the gate weight for softmax routers).</summary>
    public ReadOnlySpan<float> ExpertOutput(int e, int t) => _expertOut[e].AsSpan(t * _math.Hidden, _math.Hidden);

    public bool ScalesInput => _math.ScalesInput;

    /// <summary>Routing of token t among the kept experts.</summary>
    public List<Routing> Route(int t, bool[] kept)
    {
        var routes = new List<Routing>(TopK);
        Router.Route(_math.Moe, _logits.AsSpan(t * Experts, Experts), t, routes, kept);
        return routes;
    }

    public double Error(int t, float[] output)
    {
        double s = 0;
        var target = _target[t];
        for (int i = 0; i < output.Length; i++)
        {
            double d = output[i] - target[i];
            s += d * d;
        }
        return s * _weight[t];
    }

    private float[] Combine(List<Routing> routes, int t)
    {
        int h = _math.Hidden;
        var y = new float[h];
        foreach (var r in routes)
        {
            var f = _expertOut[r.Expert].AsSpan(t * h, h);
            if (_math.ScalesInput) TensorPrimitives.Add(y, f, y);
            else TensorPrimitives.MultiplyAdd(f, r.Weight, y, y);
        }
        return y;
    }
}
