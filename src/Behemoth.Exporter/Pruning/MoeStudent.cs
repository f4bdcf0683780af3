using System.Numerics.Tensors;
using Behemoth.Formats.Config;
using Behemoth.Reference.Blocks;

namespace Behemoth.Exporter.Pruning;

/// <summary>
/// The trainable routed part of one pruned MoE layer for knowledge distillation: the router rows of the kept experts and
/// their gate, up and down projections (nn.Linear layout), with a forward pass and a hand-written backward pass of the
/// weighted squared error against a target output. Routing among the kept experts follows the architecture's router
/// (<see cref="Router.Route"/>); which experts a token goes to is a discrete choice, so gradients reach the router rows
/// through the routing weights of the chosen experts only (as in training a MoE).
/// </summary>
internal sealed class MoeStudent
{
    private readonly MoeSpec _spec;     // the layer's routing rule over the kept experts only

    public MoeStudent(MoeSpec moe, int hidden, int[] kept, float[] routerRows, IReadOnlyList<(float[] Gate, float[] Up, float[] Down)> experts)
    {
        Hidden = hidden;
        Inter = moe.ExpertIntermediate;
        Kept = kept;
        ScalesInput = moe.Router == RouterKind.TopKSigmoid;
        _spec = moe with { NumExperts = kept.Length, TopK = Math.Min(moe.TopK, kept.Length) };
        Router = routerRows;
        Gate = experts.Select(e => e.Gate).ToArray();
        Up = experts.Select(e => e.Up).ToArray();
        Down = experts.Select(e => e.Down).ToArray();
    }

    public int Hidden { get; }
    public int Inter { get; }

    /// <summary>The kept experts' original ids, ascending; local expert i is Kept[i].</summary>
    public int[] Kept { get; }

    public bool ScalesInput { get; }

    /// <summary>Router rows [kept, hidden].</summary>
    public float[] Router { get; }

    public float[][] Gate { get; }
    public float[][] Up { get; }
    public float[][] Down { get; }

    /// <summary>Every trainable array, in a fixed order (router, then gate, up, down per kept expert).</summary>
    public float[][] Parameters => [Router, .. Gate, .. Up, .. Down];

    public MoeStudent Clone() => new(_spec with { NumExperts = Kept.Length }, Hidden, Kept, (float[])Router.Clone(),
        Enumerable.Range(0, Kept.Length).Select(i => ((float[])Gate[i].Clone(), (float[])Up[i].Clone(), (float[])Down[i].Clone())).ToArray());

    public void CopyFrom(MoeStudent other)
    {
        var (to, from) = (Parameters, other.Parameters);
        for (int i = 0; i < to.Length; i++) from[i].CopyTo(to[i], 0);
    }

    /// <summary>Routed output [rows, hidden] for inputs x [rows, hidden].</summary>
    public float[] Forward(ReadOnlySpan<float> x)
    {
        int rows = x.Length / Hidden;
        var y = new float[rows * Hidden];
        Run(x, Enumerable.Range(0, rows).ToArray(), y, target: default, weights: default, grads: null);
        return y;
    }

    /// <summary>
    /// Σ over <paramref name="tokens"/> of w_t ‖y(x_t) − target_t‖²; with <paramref name="grads"/> (same shapes as
    /// <see cref="Parameters"/>, cleared by the caller) its gradient is added there.
    /// </summary>
    public double Loss(ReadOnlySpan<float> x, ReadOnlySpan<float> target, ReadOnlySpan<double> weights, int[] tokens, float[][]? grads)
    {
        var y = new float[tokens.Length * Hidden];
        return Run(x, tokens, y, target, weights, grads);
    }

    private double Run(ReadOnlySpan<float> xAll, int[] tokens, float[] y, ReadOnlySpan<float> target, ReadOnlySpan<double> weights, float[][]? grads)
    {
        int h = Hidden, inter = Inter, k = Kept.Length, n = tokens.Length;
        var x = new float[n * h];
        for (int i = 0; i < n; i++) xAll.Slice(tokens[i] * h, h).CopyTo(x.AsSpan(i * h, h));
        var logits = new float[n * k];
        Ops.Linear(x, Router, default, logits, h, k);
        var routes = new List<Routing>(n * _spec.TopK);
        for (int i = 0; i < n; i++) Reference.Blocks.Router.Route(_spec, logits.AsSpan(i * k, k), i, routes);

        // forward, expert by expert, keeping what the backward pass needs
        var groups = routes.Select((r, index) => (r, index)).GroupBy(p => p.r.Expert).OrderBy(g => g.Key).ToArray();
        var saved = new (int[] Rows, int[] RouteIndex, float[] Input, float[] A, float[] B, float[] Hd, float[] F)[groups.Length];
        for (int gi = 0; gi < groups.Length; gi++)
        {
            int e = groups[gi].Key;
            var list = groups[gi].ToArray();
            int m = list.Length;
            var input = new float[m * h];
            for (int i = 0; i < m; i++)
            {
                var row = input.AsSpan(i * h, h);
                x.AsSpan(list[i].r.Token * h, h).CopyTo(row);
                if (ScalesInput) TensorPrimitives.Multiply(row, list[i].r.Weight, row);
            }
            var a = new float[m * inter];
            var b = new float[m * inter];
            Ops.Linear(input, Gate[e], default, a, h, inter);
            Ops.Linear(input, Up[e], default, b, h, inter);
            var hd = new float[m * inter];
            for (int j = 0; j < hd.Length; j++) hd[j] = Silu(a[j]) * b[j];
            var f = new float[m * h];
            Ops.Linear(hd, Down[e], default, f, inter, h);
            for (int i = 0; i < m; i++)
            {
                var dst = y.AsSpan(list[i].r.Token * h, h);
                TensorPrimitives.MultiplyAdd(f.AsSpan(i * h, h), ScalesInput ? 1f : list[i].r.Weight, dst, dst);
            }
            saved[gi] = (list.Select(p => p.r.Token).ToArray(), list.Select(p => p.index).ToArray(), input, a, b, hd, f);
        }
        if (target.IsEmpty) return 0;

        // loss and dL/dy
        double loss = 0;
        var gy = new float[n * h];
        for (int i = 0; i < n; i++)
        {
            int t = tokens[i];
            double w = weights[t], s = 0;
            for (int j = 0; j < h; j++)
            {
                double d = y[i * h + j] - target[t * h + j];
                s += d * d;
                gy[i * h + j] = (float)(2 * w * d);
            }
            loss += w * s;
        }
        if (grads is null) return loss;

        // backward, expert by expert; dL/d(routing weight) per route
        var gRoute = new double[routes.Count];
        var gRouter = grads[0];
        for (int gi = 0; gi < groups.Length; gi++)
        {
            int e = groups[gi].Key;
            var (rows, routeIndex, input, a, b, hd, f) = saved[gi];
            int m = rows.Length;
            var (gG, gU, gD) = (grads[1 + e], grads[1 + k + e], grads[1 + 2 * k + e]);
            var gf = new float[m * h];
            for (int i = 0; i < m; i++)
            {
                var g = gy.AsSpan(rows[i] * h, h);
                float weight = routes[routeIndex[i]].Weight;
                if (ScalesInput) g.CopyTo(gf.AsSpan(i * h, h));
                else
                {
                    TensorPrimitives.Multiply(g, weight, gf.AsSpan(i * h, h));
                    gRoute[routeIndex[i]] = TensorPrimitives.Dot(g, f.AsSpan(i * h, h));
                }
            }
            var ghd = new float[m * inter];
            var ga = new float[m * inter];
            var gb = new float[m * inter];
            for (int i = 0; i < m; i++)
            {
                var gfi = gf.AsSpan(i * h, h);
                var ghdi = ghd.AsSpan(i * inter, inter);
                var hdi = hd.AsSpan(i * inter, inter);
                for (int r = 0; r < h; r++)
                {
                    float v = gfi[r];
                    if (v == 0) continue;
                    var gdRow = gD.AsSpan(r * inter, inter);
                    TensorPrimitives.MultiplyAdd(hdi, v, gdRow, gdRow);                                       // dD += gF ⊗ hd
                    TensorPrimitives.MultiplyAdd(Down[e].AsSpan(r * inter, inter), v, ghdi, ghdi);          // g_hd = Dᵀ gF
                }
                for (int j = 0; j < inter; j++)
                {
                    int p = i * inter + j;
                    float sg = Sigmoid(a[p]);
                    ga[p] = ghd[p] * b[p] * sg * (1 + a[p] * (1 - sg));                                     // silu'(a)
                    gb[p] = ghd[p] * a[p] * sg;                                                             // silu(a)
                }
                var xi = input.AsSpan(i * h, h);
                var gxi = ScalesInput ? new float[h] : null;
                for (int j = 0; j < inter; j++)
                {
                    float va = ga[i * inter + j], vb = gb[i * inter + j];
                    if (va != 0)
                    {
                        var row = gG.AsSpan(j * h, h);
                        TensorPrimitives.MultiplyAdd(xi, va, row, row);                                     // dG += gA ⊗ x̃
                        if (gxi is not null) TensorPrimitives.MultiplyAdd(Gate[e].AsSpan(j * h, h), va, gxi, gxi);
                    }
                    if (vb != 0)
                    {
                        var row = gU.AsSpan(j * h, h);
                        TensorPrimitives.MultiplyAdd(xi, vb, row, row);                                     // dU += gB ⊗ x̃
                        if (gxi is not null) TensorPrimitives.MultiplyAdd(Up[e].AsSpan(j * h, h), vb, gxi, gxi);
                    }
                }
                // Llama 4: x̃ = s·x, so dL/ds = <dL/dx̃, x>
                if (gxi is not null) gRoute[routeIndex[i]] = TensorPrimitives.Dot(gxi, x.AsSpan(rows[i] * h, h));
            }
        }

        // routing weights → router logits → router rows
        var gz = new double[k];
        int at = 0;
        for (int i = 0; i < n; i++)
        {
            int count = 0;
            while (at + count < routes.Count && routes[at + count].Token == i) count++;
            Array.Clear(gz);
            var z = logits.AsSpan(i * k, k);
            if (_spec.Router == RouterKind.TopKSigmoid)
                for (int c = 0; c < count; c++)
                {
                    var r = routes[at + c];
                    gz[r.Expert] += gRoute[at + c] * r.Weight * (1 - r.Weight);
                }
            else if (_spec.NormTopKProb)
            {
                // w_e = softmax over the chosen experts' logits
                double mean = 0;
                for (int c = 0; c < count; c++) mean += routes[at + c].Weight * gRoute[at + c];
                for (int c = 0; c < count; c++) gz[routes[at + c].Expert] += routes[at + c].Weight * (gRoute[at + c] - mean);
            }
            else
            {
                // w_e = p_e, the softmax over every kept expert: dp_e/dz_j = p_e (δ_ej − p_j)
                double max = double.NegativeInfinity, sum = 0;
                for (int j = 0; j < k; j++) max = Math.Max(max, z[j]);
                var p = new double[k];
                for (int j = 0; j < k; j++) sum += p[j] = Math.Exp(z[j] - max);
                for (int j = 0; j < k; j++) p[j] /= sum;
                double dot = 0;
                for (int c = 0; c < count; c++) dot += gRoute[at + c] * p[routes[at + c].Expert];
                for (int c = 0; c < count; c++) gz[routes[at + c].Expert] += gRoute[at + c] * p[routes[at + c].Expert];
                for (int j = 0; j < k; j++) gz[j] -= p[j] * dot;
            }
            var xi = x.AsSpan(i * h, h);
            for (int j = 0; j < k; j++)
                if (gz[j] != 0) TensorPrimitives.MultiplyAdd(xi, (float)gz[j], gRouter.AsSpan(j * h, h), gRouter.AsSpan(j * h, h));
            at += count;
        }
        return loss;
    }

    private static float Sigmoid(float v) => 1f / (1f + MathF.Exp(-v));
    private static float Silu(float v) => v * Sigmoid(v);
}

/// <summary>Adam (Kingma and Ba 2015) over a set of float arrays, with moments in float32 (two copies of the parameters).</summary>
internal sealed class Adam(float[][] parameters, double beta1 = 0.9, double beta2 = 0.999, double epsilon = 1e-8)
{
    private readonly float[][] _m = parameters.Select(p => new float[p.Length]).ToArray();
    private readonly float[][] _v = parameters.Select(p => new float[p.Length]).ToArray();
    private int _t;

    public void Step(float[][] grads, double learningRate)
    {
        _t++;
        double c1 = 1 - Math.Pow(beta1, _t), c2 = 1 - Math.Pow(beta2, _t);
        float b1 = (float)beta1, b2 = (float)beta2;
        for (int a = 0; a < parameters.Length; a++)
        {
            var (p, g, m, v) = (parameters[a], grads[a], _m[a], _v[a]);
            for (int i = 0; i < p.Length; i++)
            {
                m[i] = b1 * m[i] + (1 - b1) * g[i];
                v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
                p[i] -= (float)(learningRate * (m[i] / c1) / (Math.Sqrt(v[i] / c2) + epsilon));
            }
        }
    }
}
