using System.Diagnostics;
using System.Numerics.Tensors;
using Behemoth.Exporter.Export;
using Behemoth.Formats.Config;
using Behemoth.Package;
using Behemoth.Reference;

namespace Behemoth.Exporter.Pruning;

/// <summary>What each pruned layer's routed experts are trained to output (<see cref="KdOptions.Target"/>).</summary>
public enum KdTarget
{
    /// <summary>The full layer's routed output on the student's own inputs: each layer imitates the teacher's layer.</summary>
    Layer,

    /// <summary>
    /// What takes the student's residual stream to the teacher's after this layer: the teacher's hidden state minus the
    /// student's (after attention and the shared expert), so each layer also corrects the drift of the layers before it.
    /// </summary>
    Residual,
}

/// <summary>Settings of knowledge distillation (<see cref="Distillation.Kd"/>).</summary>
public sealed record KdOptions
{
    /// <summary>Optimizer steps per pruned MoE layer.</summary>
    public int Steps { get; init; } = 1000;

    /// <summary>Calibration tokens per step (a mini-batch drawn from the training split).</summary>
    public int BatchTokens { get; init; } = 256;

    /// <summary>Peak Adam learning rate (10-step warm-up, then cosine decay to a tenth).</summary>
    public double LearningRate { get; init; } = 2e-3;

    /// <summary>Calibration tokens a profile uses at most, spread over its domains by their weights.</summary>
    public int Tokens { get; init; } = 65536;

    /// <summary>Share of the calibration documents held out (not trained on): the held-out loss picks the step kept.</summary>
    public double HeldOutShare { get; init; } = 0.1;

    /// <summary>Held-out tokens evaluated per step at most (evenly spaced over the held-out documents).</summary>
    public int HeldOutTokens { get; init; } = 1024;

    /// <summary>Most passes over the training tokens that Steps × BatchTokens may make; more means too little calibration text.</summary>
    public int MaxPasses { get; init; } = 32;

    public int Seed { get; init; } = 1234;

    public KdTarget Target { get; init; } = KdTarget.Residual;

    public void Validate()
    {
        if (Steps < 1) throw new BehemothException($"kd: the step count must be positive, found {Steps}");
        if (BatchTokens < 1) throw new BehemothException($"kd: the batch must hold at least one token, found {BatchTokens}");
        if (!(LearningRate > 0)) throw new BehemothException($"kd: the learning rate must be positive, found {LearningRate}");
        if (Tokens < 2) throw new BehemothException($"kd: at least 2 calibration tokens are needed, found {Tokens}");
        if (!(HeldOutShare > 0 && HeldOutShare < 1)) throw new BehemothException($"kd: the held-out share must be between 0 and 1, found {HeldOutShare}");
    }
}

/// <summary>One pruned layer's training: the relative error ‖y − y_teacher‖² / ‖y_teacher‖² per step, and the step kept.</summary>
public sealed record KdLayerCurve(int Layer, int KeptExperts, double[] Train, double[] HeldOut, int BestStep)
{
    /// <summary>Wall time of the optimizer steps (each with its held-out evaluation), without the layer's propagation and targets.</summary>
    public double TrainSeconds { get; init; }

    /// <summary>Held-out error before training (the pruned layer as it is) and at the step kept.</summary>
    public double Before => HeldOut[0];
    public double After => HeldOut[BestStep];
}

/// <summary>What distilling one profile did and cost.</summary>
public sealed record KdReport(string Profile, IReadOnlyList<KdLayerCurve> Layers, int TrainTokens, int HeldOutTokens, TimeSpan Elapsed, long PeakWorkingSetBytes);

/// <summary>
/// Layer-wise knowledge distillation of a pruned profile from the full model. The student is the profile: per pruned MoE
/// layer, its kept experts' router rows and gate / up / down projections are trained; everything else (embeddings,
/// attention, norms, shared experts, dense layers, lm_head) is frozen, because the package stores those once for every
/// profile and the objective below only sees the routed experts. The calibration documents go through the student
/// layer after layer: at each pruned MoE layer, the student's own inputs X (what the pruned layers before it produce)
/// are fed to the teacher's routed experts (the full layer: every expert, the original router) once, and these outputs
/// are cached as the target; the student layer is trained by Adam on mini-batches to minimise Σ w‖y_student(X) −
/// y_teacher(X)‖² (gradients of this one block, <see cref="MoeStudent"/>), and the step with the lowest error on the
/// held-out documents is kept (step 0, the untrained pruned layer, included: distillation never makes the calibration
/// held-out error worse). Then the trained layer produces the next layer's inputs, so later layers learn on the
/// activations they will see, and errors do not compound. In memory: the residual stream and the layer's inputs and
/// target over the calibration tokens, and one layer's kept experts with two Adam moments.
/// </summary>
internal static class KnowledgeDistiller
{
    /// <summary>One calibration document: its tokens, the weight of each of its tokens, and whether it is held out.</summary>
    public sealed record Document(int[] Tokens, double TokenWeight, bool HeldOut);

    /// <summary>
    /// The documents of a profile: per domain, a seeded sample of its windows with about Tokens × share tokens, the first
    /// HeldOutShare of them held out; a token of domain d weighs share_d / (tokens of d), so each split mixes the domains
    /// as the profile asks.
    /// </summary>
    public static List<Document> Sample(IReadOnlyDictionary<string, double> mix, Func<string, CalibrationDomain> calibration, KdOptions options, string profile)
    {
        double total = mix.Values.Sum();
        var docs = new List<Document>();
        foreach (var (name, share) in mix.OrderBy(p => p.Key, StringComparer.Ordinal))
        {
            var windows = calibration(name).Sequences.Where(s => s.Length > 1).ToArray();
            new Random(options.Seed ^ Stable(name)).Shuffle(windows);
            long want = Math.Max(2, (long)Math.Ceiling(options.Tokens * share / total));
            var picked = new List<int[]>();
            long tokens = 0;
            foreach (var w in windows)
            {
                if (tokens >= want) break;
                picked.Add(w);
                tokens += w.Length;
            }
            if (picked.Count < 2)
                throw new BehemothException($"kd, profile '{profile}': domain '{name}' has {picked.Count} calibration document(s); at least 2 are needed to hold one out");
            int held = Math.Max(1, (int)Math.Round(picked.Count * options.HeldOutShare));
            double weight = share / total / tokens;
            for (int i = 0; i < picked.Count; i++) docs.Add(new Document(picked[i], weight, i < held));
        }
        return docs;
    }

    private static int Stable(string s)
    {
        uint hash = 2166136261;
        foreach (char c in s) hash = (hash ^ c) * 16777619;
        return (int)(hash & 0x7fffffff);
    }

    /// <param name="refit">
    /// Instead of gradient steps, refit each kept expert's down projection in closed form (<see cref="Distiller.Refit"/>,
    /// ridge least squares, at most <see cref="RefitTokens"/> training tokens) to the same target on the same propagated
    /// inputs, kept only if it lowers the held-out error; router rows are left as they are.
    /// </param>
    public static (ProfileWeights Weights, KdReport Report) Distil(ReferenceModel model, string profile, IReadOnlyDictionary<int, int[]> kept,
        List<Document> docs, KdOptions options, IProgress<string>? progress, CancellationToken ct, bool refit = false)
    {
        options.Validate();
        var clock = Stopwatch.StartNew();
        long peak = Environment.WorkingSet;
        var c = model.Config;
        int h = c.HiddenSize, experts = c.Moe.NumExperts;
        var train = docs.Where(d => !d.HeldOut).ToArray();
        var held = docs.Where(d => d.HeldOut).ToArray();
        int trainTokens = train.Sum(d => d.Tokens.Length), heldTokens = held.Sum(d => d.Tokens.Length);
        if (train.Length == 0 || held.Length == 0)
            throw new BehemothException($"kd, profile '{profile}': too little calibration text to hold documents out ({docs.Count} document(s))");
        double passes = (double)options.Steps * options.BatchTokens / trainTokens;
        if (!refit && passes > options.MaxPasses)
            throw new BehemothException($"kd, profile '{profile}': too little calibration text for {options.Steps} steps of {options.BatchTokens} tokens: "
                + $"{trainTokens} training tokens would be passed over {passes:F0} times (at most {options.MaxPasses}); "
                + $"profile more text (behemoth profile --max-tokens), or lower --kd-steps to {options.MaxPasses * trainTokens / options.BatchTokens} or fewer");

        // the residual stream of every document, advanced one layer at a time
        var ordered = train.Concat(held).ToArray();
        var x = ordered.Select(d => model.Embed(d.Tokens)).ToArray();
        // the teacher's residual stream, for the Residual target
        var xt = options.Target == KdTarget.Residual ? x.Select(a => (float[])a.Clone()).ToArray() : null;
        var weights = ordered.SelectMany(d => Enumerable.Repeat(d.TokenWeight, d.Tokens.Length)).ToArray();
        var heldRows = EvenlySpaced(trainTokens, heldTokens, options.HeldOutTokens);
        var experts_ = new Dictionary<(int, int), ExpertMatrices>();
        var routers = new Dictionary<int, float[]>();
        var curves = new List<KdLayerCurve>();
        var pruned = c.Layers.Where(l => l.FeedForward == FeedForwardKind.Moe && kept.TryGetValue(l.Index, out var ids) && ids.Length < experts).ToArray();
        int done = 0;

        foreach (var layer in c.Layers)
        {
            ct.ThrowIfCancellationRequested();
            var normed = x.Select(xs => model.AttentionStep(layer.Index, xs)).ToArray();
            if (xt is not null)
                foreach (var a in xt) model.FeedForwardStep(layer.Index, a, model.AttentionStep(layer.Index, a));
            if (!pruned.Contains(layer))
            {
                for (int s = 0; s < x.Length; s++) model.FeedForwardStep(layer.Index, x[s], normed[s]);
                continue;
            }
            done++;
            var input = Concat(normed, h);
            var math = new MoeLayerMath(model, layer.Index);
            // cached once per layer: the teacher on the student's inputs, or what reaches the teacher's hidden state
            var target = xt is null ? TeacherRouted(math, input) : Concat(Enumerable.Range(0, x.Length).Select(s =>
            {
                var reached = (float[])x[s].Clone();
                model.FeedForwardStep(layer.Index, reached, normed[s], n => new float[n.Length]);   // attention + shared expert
                return xt[s].Zip(reached, (a, b) => a - b).ToArray();
            }).ToArray(), h);
            var ids = kept[layer.Index].Order().ToArray();
            var rows = new float[ids.Length * h];
            for (int i = 0; i < ids.Length; i++) math.RouterWeights.AsSpan(ids[i] * h, h).CopyTo(rows.AsSpan(i * h, h));
            var student = new MoeStudent(c.Moe, h, ids, rows, ids.Select(math.Weights).ToArray());
            GC.Collect();   // the experts read for the targets are garbage now: a large model's peak memory stays near one layer's
            var curve = refit ? RefitDown(math, student, input, target, weights, trainTokens, heldRows, layer.Index) : Train(student, input, target, weights, trainTokens, heldRows, options, layer.Index,
                (step, tr, he) =>
                {
                    peak = Math.Max(peak, Environment.WorkingSet);
                    if (step % Math.Max(1, options.Steps / 10) == 0 || step == options.Steps)
                        progress?.Report($"{profile}: kd layer {layer.Index} ({done}/{pruned.Length}) {Bar(step, options.Steps)} step {step}/{options.Steps}, "
                            + $"error train {tr:F4} held-out {he:F4}  [{clock.Elapsed.TotalSeconds:F0} s]");
                }, ct);
            curves.Add(curve);
            for (int i = 0; i < ids.Length; i++) experts_[(layer.Index, ids[i])] = new ExpertMatrices(student.Gate[i], student.Up[i], student.Down[i]);
            if (!refit) routers[layer.Index] = student.Router;
            progress?.Report($"{profile}: {(refit ? "refit" : "kd")} layer {layer.Index}: held-out error {curve.Before:F4} → {curve.After:F4} (step {curve.BestStep} kept)");
            for (int s = 0; s < x.Length; s++) model.FeedForwardStep(layer.Index, x[s], normed[s], n => student.Forward(n.Span));
            peak = Math.Max(peak, Environment.WorkingSet);
        }
        return (new ProfileWeights(experts_, routers), new KdReport(profile, curves, trainTokens, heldTokens, clock.Elapsed, peak));
    }

    /// <summary>Tokens the closed-form refit fits at most per layer (evenly spaced over the training split).</summary>
    public const int RefitTokens = 4096;

    /// <summary>The closed-form down-projection refit of one layer (step 0: as pruned, step 1: refitted, kept only if better held out).</summary>
    internal static KdLayerCurve RefitDown(MoeLayerMath math, MoeStudent student, float[] input, float[] target, double[] weights, int trainTokens,
        int[] heldRows, int layer)
    {
        int h = student.Hidden;
        double Error(int[] rows) => student.Loss(input, target, weights, rows, null) / Math.Max(rows.Sum(t => weights[t] * TensorPrimitives.Dot(target.AsSpan(t * h, h), target.AsSpan(t * h, h))), 1e-30);
        var clock = Stopwatch.StartNew();
        var rows = EvenlySpaced(0, trainTokens, RefitTokens);
        double before = Error(heldRows), trainBefore = Error(rows);
        var x = new float[rows.Length * h];
        var y = new float[rows.Length * h];
        for (int i = 0; i < rows.Length; i++)
        {
            input.AsSpan(rows[i] * h, h).CopyTo(x.AsSpan(i * h, h));
            target.AsSpan(rows[i] * h, h).CopyTo(y.AsSpan(i * h, h));
        }
        double total = rows.Sum(t => weights[t]);
        var inputs = new ReconstructionInputs(math, x, rows.Select(t => weights[t] / total).ToArray(), y);
        var (experts, _) = Distiller.Refit(math, student.Kept, inputs, RefitParts.Down);
        var old = student.Down.Select(d => (float[])d.Clone()).ToArray();
        for (int i = 0; i < student.Kept.Length; i++)
            if (experts.TryGetValue((layer, student.Kept[i]), out var m)) m.Down.CopyTo(student.Down[i], 0);
        double after = Error(heldRows), trainAfter = Error(rows);
        int best = after < before ? 1 : 0;
        if (best == 0)
            for (int i = 0; i < old.Length; i++) old[i].CopyTo(student.Down[i], 0);
        return new KdLayerCurve(layer, student.Kept.Length, [trainBefore, trainAfter], [before, after], best) { TrainSeconds = clock.Elapsed.TotalSeconds };
    }

    /// <summary>Trains one layer; returns the per-step errors, with the student left at the step of least held-out error.</summary>
    internal static KdLayerCurve Train(MoeStudent student, float[] input, float[] target, double[] weights, int trainTokens, int[] heldRows,
        KdOptions options, int layer, Action<int, double, double>? stepDone, CancellationToken ct)
    {
        int h = student.Hidden;
        var norms = new double[weights.Length];
        for (int t = 0; t < norms.Length; t++)
        {
            var v = target.AsSpan(t * h, h);
            norms[t] = weights[t] * TensorPrimitives.Dot(v, v);
        }
        double Norm(int[] tokens) => Math.Max(tokens.Sum(t => norms[t]), 1e-30);
        double heldNorm = Norm(heldRows);
        double HeldError() => student.Loss(input, target, weights, heldRows, null) / heldNorm;

        var trainCurve = new double[options.Steps + 1];
        var heldCurve = new double[options.Steps + 1];
        var order = Enumerable.Range(0, trainTokens).ToArray();
        var random = new Random(options.Seed + 7919 * layer);
        random.Shuffle(order);
        int cursor = 0;
        var grads = student.Parameters.Select(p => new float[p.Length]).ToArray();
        var adam = new Adam(student.Parameters);
        var best = student.Clone();
        int bestStep = 0;
        heldCurve[0] = HeldError();
        trainCurve[0] = double.NaN;
        stepDone?.Invoke(0, double.NaN, heldCurve[0]);
        int batch = Math.Min(options.BatchTokens, trainTokens);
        var trainClock = Stopwatch.StartNew();
        for (int step = 1; step <= options.Steps; step++)
        {
            ct.ThrowIfCancellationRequested();
            var tokens = new int[batch];
            for (int i = 0; i < batch; i++)
            {
                if (cursor == order.Length)
                {
                    random.Shuffle(order);
                    cursor = 0;
                }
                tokens[i] = order[cursor++];
            }
            foreach (var g in grads) Array.Clear(g);
            double norm = Norm(tokens);
            trainCurve[step] = student.Loss(input, target, weights, tokens, grads) / norm;
            foreach (var g in grads) TensorPrimitives.Multiply(g, (float)(1 / norm), g);
            adam.Step(grads, Schedule(step, options));
            heldCurve[step] = HeldError();
            if (heldCurve[step] < heldCurve[bestStep])
            {
                bestStep = step;
                best.CopyFrom(student);
            }
            stepDone?.Invoke(step, trainCurve[step], heldCurve[step]);
        }
        student.CopyFrom(best);
        return new KdLayerCurve(layer, student.Kept.Length, trainCurve, heldCurve, bestStep) { TrainSeconds = trainClock.Elapsed.TotalSeconds };
    }

    /// <summary>10-step linear warm-up, then cosine decay from the peak to a tenth of it.</summary>
    internal static double Schedule(int step, KdOptions o)
    {
        int warm = Math.Min(10, o.Steps);
        if (step <= warm) return o.LearningRate * step / warm;
        double progress = (double)(step - warm) / Math.Max(1, o.Steps - warm);
        return o.LearningRate * (0.1 + 0.9 * 0.5 * (1 + Math.Cos(Math.PI * progress)));
    }

    /// <summary>The full layer's routed output (every expert, the original router) on inputs x [tokens, hidden].</summary>
    internal static float[] TeacherRouted(MoeLayerMath math, float[] x)
    {
        int h = math.Hidden;
        var y = new float[x.Length];
        var routes = math.Route(math.Logits(x));
        foreach (var group in routes.GroupBy(r => r.Expert))
        {
            var list = group.ToArray();
            var rows = new float[list.Length * h];
            for (int i = 0; i < list.Length; i++) x.AsSpan(list[i].Token * h, h).CopyTo(rows.AsSpan(i * h, h));
            var f = MoeLayerMath.Contribution(math.Weights(group.Key), rows, list.Select(r => r.Weight).ToArray(), math.ScalesInput, h, math.Moe.ExpertIntermediate);
            for (int i = 0; i < list.Length; i++)
            {
                var dst = y.AsSpan(list[i].Token * h, h);
                TensorPrimitives.Add(dst, f.AsSpan(i * h, h), dst);
            }
        }
        return y;
    }

    private static float[] Concat(float[][] parts, int h)
    {
        var all = new float[parts.Sum(p => (long)p.Length)];
        long at = 0;
        foreach (var p in parts)
        {
            p.CopyTo(all, at);
            at += p.Length;
        }
        return all;
    }

    private static int[] EvenlySpaced(int start, int count, int max)
    {
        int n = Math.Min(count, max);
        return Enumerable.Range(0, n).Select(i => start + (int)((long)i * count / n)).ToArray();
    }

    private static string Bar(int step, int steps)
    {
        int filled = (int)Math.Round(20.0 * step / steps);
        return "[" + new string('#', filled) + new string('.', 20 - filled) + "]";
    }
}
