using System.Numerics.Tensors;
using Behemoth.Exporter.Export;
using MathNet.Numerics.LinearAlgebra;

namespace Behemoth.Exporter.Pruning;

/// <summary>What to do with the experts a profile drops.</summary>
public enum Distillation
{
    /// <summary>Drop them.</summary>
    None,

    /// <summary>Fold each into its most similar kept expert (cosine of the weights), averaging weights by routing frequency.</summary>
    Merge,

    /// <summary>
    /// A measured baseline, not offered by <c>behemoth export</c> (docs/pruning.md: it does not beat <see cref="None"/>).
    /// Ridge least squares: each kept expert's down projection refitted in closed form, layer after layer on the pruned
    /// model's own calibration activations, towards what takes its hidden state to the full model's (the router rows
    /// stay); a layer's refit is kept only if it lowers the error on held-out calibration documents.
    /// </summary>
    Refit,

    /// <summary>
    /// Knowledge distillation from the full model (<see cref="KnowledgeDistiller"/>): layer after layer, the kept experts
    /// and their router rows are trained by gradient descent so that each pruned layer's routed output matches the full
    /// layer's on the pruned model's own activations.
    /// </summary>
    Kd,
}

/// <summary>Which parts of a layer <see cref="Distiller.Refit"/> refits (the parts alone are for measuring which one hurts).</summary>
public enum RefitParts
{
    RouterAndDown,
    Router,
    Down,
}

/// <summary>Closed-form, layer-by-layer distillation of a pruned MoE layer: no training framework, one layer in memory.</summary>
internal static class Distiller
{
    /// <summary>Ridge strength relative to the mean diagonal of the normal matrix: pulls the fit towards the original weights.</summary>
    public const double RelativeRidge = 0.1;

    /// <summary>For each dropped expert, the kept expert whose weights are most similar (cosine of gate, up and down together).</summary>
    public static Dictionary<int, int> MostSimilar(MoeLayerMath math, int[] kept)
    {
        var flat = Enumerable.Range(0, math.Experts).Select(e =>
        {
            var (g, u, d) = math.Weights(e);
            return g.Concat(u).Concat(d).ToArray();
        }).ToArray();
        var map = new Dictionary<int, int>();
        foreach (int p in Enumerable.Range(0, math.Experts).Except(kept))
            map[p] = kept.OrderByDescending(k => TensorPrimitives.CosineSimilarity(flat[p], flat[k])).ThenBy(k => k).First();
        return map;
    }

    public static Dictionary<(int, int), ExpertMatrices> Merge(MoeLayerMath math, int[] kept, double[] frequency)
    {
        var target = MostSimilar(math, kept);
        var result = new Dictionary<(int, int), ExpertMatrices>();
        foreach (int k in kept)
        {
            var absorbed = target.Where(p => p.Value == k).Select(p => p.Key).Where(p => frequency[p] > 0).ToArray();
            if (absorbed.Length == 0) continue;
            double total = frequency[k] + absorbed.Sum(p => frequency[p]);
            var (g, u, d) = math.Weights(k);
            Scale(g, frequency[k] / total); Scale(u, frequency[k] / total); Scale(d, frequency[k] / total);
            foreach (int p in absorbed)
            {
                var (pg, pu, pd) = math.Weights(p);
                float w = (float)(frequency[p] / total);
                TensorPrimitives.MultiplyAdd(pg, w, g, g);
                TensorPrimitives.MultiplyAdd(pu, w, u, u);
                TensorPrimitives.MultiplyAdd(pd, w, d, d);
            }
            result[(math.Layer, k)] = new ExpertMatrices(g, u, d);
        }
        return result;

        static void Scale(float[] m, double s) => TensorPrimitives.Multiply(m, (float)s, m);
    }

    /// <summary>Refits the router rows and down projections of the kept experts; returns (experts, router rows in ascending id order).</summary>
    public static (Dictionary<(int, int), ExpertMatrices> Experts, float[] Router) Refit(MoeLayerMath math, int[] kept, ReconstructionInputs inputs,
        RefitParts parts = RefitParts.RouterAndDown)
    {
        int h = math.Hidden, n = inputs.Tokens, e = math.Experts, inter = math.Moe.ExpertIntermediate;
        var ascending = kept.Order().ToArray();
        var weights = inputs.TokenWeights;

        // 1. Router: each kept expert's target logit is logsumexp of its own and its absorbed experts' original logits.
        var map = MostSimilar(math, ascending);
        var x = Matrix<double>.Build.Dense(n, h, (t, j) => inputs.X[t * h + j]);
        var targets = Matrix<double>.Build.Dense(n, ascending.Length, (t, i) =>
        {
            int k = ascending[i];
            double max = inputs.Logits[t * e + k], sum = 0;
            var group = map.Where(p => p.Value == k).Select(p => p.Key).Append(k).ToArray();
            foreach (int m in group) max = Math.Max(max, inputs.Logits[t * e + m]);
            foreach (int m in group) sum += Math.Exp(inputs.Logits[t * e + m] - max);
            return max + Math.Log(sum);
        });
        var w = Vector<double>.Build.Dense(n, t => weights[t]);
        var xw = x.Transpose().PointwiseMultiply(Matrix<double>.Build.Dense(h, n, (_, t) => w[t]));      // Xᵀ W
        var original = Matrix<double>.Build.Dense(ascending.Length, h, (i, j) => math.RouterWeights[ascending[i] * h + j]);
        var router = parts == RefitParts.Down ? original : RidgeSolve(xw * x, xw * targets, original.Transpose()).Transpose();   // [kept, hidden]
        var routerRows = new float[ascending.Length * h];
        for (int i = 0; i < ascending.Length; i++)
            for (int j = 0; j < h; j++) routerRows[i * h + j] = (float)router[i, j];

        // 2. Route with the new rows among the kept experts; each kept expert's down projection fits what the full layer
        //    output minus the other chosen experts' contributions leaves for it.
        var newLogits = math.Logits(inputs.X, FullRouter(math, ascending, routerRows));
        var allowed = Enumerable.Range(0, e).Select(ascending.Contains).ToArray();
        var routes = math.Route(newLogits, allowed);
        var byToken = routes.GroupBy(r => r.Token).ToDictionary(g => g.Key, g => g.ToArray());
        var current = ascending.ToDictionary(k => k, math.Weights);
        var result = new Dictionary<(int, int), ExpertMatrices>();
        foreach (int k in parts == RefitParts.Router ? [] : ascending)
        {
            var mine = routes.Where(r => r.Expert == k).ToArray();
            if (mine.Length == 0) continue;
            var rows = new float[mine.Length * h];
            for (int i = 0; i < mine.Length; i++) inputs.X.AsSpan(mine[i].Token * h, h).CopyTo(rows.AsSpan(i * h, h));
            var gates = mine.Select(r => r.Weight).ToArray();
            var hidden = new float[mine.Length * inter];
            MoeLayerMath.Contribution(current[k], rows, gates, math.ScalesInput, h, inter, hidden);
            var a = Matrix<double>.Build.Dense(mine.Length, inter, (i, j) => hidden[i * inter + j] * (math.ScalesInput ? 1 : gates[i]));
            var residual = Matrix<double>.Build.Dense(mine.Length, h, (i, j) => inputs.Target[mine[i].Token][j]);
            for (int i = 0; i < mine.Length; i++)
                foreach (var other in byToken[mine[i].Token].Where(r => r.Expert != k))
                {
                    var contribution = MoeLayerMath.Contribution(current[other.Expert], inputs.X.AsSpan(other.Token * h, h), [other.Weight],
                        math.ScalesInput, h, inter);
                    for (int j = 0; j < h; j++) residual[i, j] -= contribution[j];
                }
            var tw = Matrix<double>.Build.Dense(inter, mine.Length, (j, i) => a[i, j] * weights[mine[i].Token]);   // Aᵀ W
            var down0 = Matrix<double>.Build.Dense(h, inter, (r, j) => current[k].Down[r * inter + j]);
            var down = RidgeSolve(tw * a, tw * residual, down0.Transpose()).Transpose();                             // [hidden, inter]
            var d = new float[h * inter];
            for (int r = 0; r < h; r++)
                for (int j = 0; j < inter; j++) d[r * inter + j] = (float)down[r, j];
            result[(math.Layer, k)] = new ExpertMatrices(current[k].Gate, current[k].Up, d);
            current[k] = (current[k].Gate, current[k].Up, d);
        }
        return (result, routerRows);
    }

    /// <summary>argmin_B ‖A B − Y‖² + λ‖B − B0‖² from the normal matrix G = AᵀA and C = AᵀY: (G + λI) B = C + λ B0.</summary>
    private static Matrix<double> RidgeSolve(Matrix<double> gram, Matrix<double> cross, Matrix<double> prior)
    {
        double lambda = RelativeRidge * Math.Max(gram.Diagonal().Average(), 1e-12);
        var lhs = gram + Matrix<double>.Build.DenseIdentity(gram.RowCount) * lambda;
        return lhs.Cholesky().Solve(cross + prior * lambda);
    }

    private static float[] FullRouter(MoeLayerMath math, int[] ascending, float[] rows)
    {
        int h = math.Hidden;
        var full = (float[])math.RouterWeights.Clone();
        for (int i = 0; i < ascending.Length; i++) rows.AsSpan(i * h, h).CopyTo(full.AsSpan(ascending[i] * h, h));
        return full;
    }
}
