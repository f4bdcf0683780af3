using Behemoth.Exporter.Export;
using Behemoth.Exporter.Pruning;
using Behemoth.Formats.Config;
using Behemoth.Reference;
using Behemoth.Tests;

namespace Behemoth.Exporter.Tests;

/// <summary>
/// Knowledge distillation: the hand-written gradients of one MoE block against central finite differences of an
/// independent float64 implementation of the loss, and the layer-by-layer training on golden checkpoints.
/// </summary>
public sealed class KdTests
{
    // ---------------------------------------------------------------- float64 oracle: loss of the routed block

    /// <summary>Σ_t w_t ‖y(x_t) − target_t‖², written from the Hugging Face definitions, in double, sharing no code with MoeStudent.</summary>
    private static double OracleLoss(RouterKind kind, bool norm, int topK, int h, int inter, double[][] p, double[] x, double[] target, double[] w, int[] tokens)
    {
        int k = (p.Length - 1) / 3;
        double loss = 0;
        foreach (int t in tokens)
        {
            var xt = x.AsSpan(t * h, h).ToArray();
            var z = new double[k];
            for (int e = 0; e < k; e++)
                for (int j = 0; j < h; j++) z[e] += p[0][e * h + j] * xt[j];
            var top = Enumerable.Range(0, k).OrderByDescending(e => z[e]).ThenBy(e => e).Take(topK).ToArray();
            var gate = new double[k];
            if (kind == RouterKind.TopKSigmoid)
                foreach (int e in top) gate[e] = 1 / (1 + Math.Exp(-z[e]));
            else
            {
                double max = z.Max();
                var pr = z.Select(v => Math.Exp(v - max)).ToArray();
                double sum = pr.Sum();
                double topSum = top.Sum(e => pr[e] / sum);
                foreach (int e in top) gate[e] = pr[e] / sum / (norm ? topSum : 1);
            }
            var y = new double[h];
            foreach (int e in top)
            {
                double[] g = p[1 + e], u = p[1 + k + e], d = p[1 + 2 * k + e];
                var xin = kind == RouterKind.TopKSigmoid ? xt.Select(v => v * gate[e]).ToArray() : xt;
                var hid = new double[inter];
                for (int i = 0; i < inter; i++)
                {
                    double a = 0, b = 0;
                    for (int j = 0; j < h; j++)
                    {
                        a += g[i * h + j] * xin[j];
                        b += u[i * h + j] * xin[j];
                    }
                    hid[i] = a / (1 + Math.Exp(-a)) * b;
                }
                double scale = kind == RouterKind.TopKSigmoid ? 1 : gate[e];
                for (int r = 0; r < h; r++)
                {
                    double o = 0;
                    for (int i = 0; i < inter; i++) o += d[r * inter + i] * hid[i];
                    y[r] += scale * o;
                }
            }
            double s = 0;
            for (int r = 0; r < h; r++) s += (y[r] - target[t * h + r]) * (y[r] - target[t * h + r]);
            loss += w[t] * s;
        }
        return loss;
    }

    [Theory]
    [InlineData(RouterKind.TopKSigmoid, false, 1)]   // Llama 4: top-1, sigmoid gate scales the expert's input
    [InlineData(RouterKind.TopKSigmoid, false, 2)]
    [InlineData(RouterKind.SoftmaxTopK, true, 2)]    // Mixtral, Qwen3-MoE: softmax renormalised over the top-k
    [InlineData(RouterKind.SoftmaxTopK, false, 2)]   // OLMoE, Qwen2-MoE: softmax over every (kept) expert, not renormalised
    public void Every_gradient_of_the_moe_block_matches_finite_differences_of_a_float64_oracle(RouterKind kind, bool norm, int topK)
    {
        const int h = 6, inter = 5, k = 3, n = 9;
        var random = new Random(42 + topK + (norm ? 10 : 0) + (int)kind * 100);
        float[] Rand(int count, double scale) => Enumerable.Range(0, count).Select(_ => (float)((random.NextDouble() * 2 - 1) * scale)).ToArray();
        var moe = new MoeSpec(NumExperts: 8, TopK: topK, ExpertIntermediate: inter, Router: kind, NormTopKProb: norm, SharedIntermediate: 0,
            SharedExpertSigmoidGate: false, Layout: ExpertLayout.PerExpert);
        var student = new MoeStudent(moe, h, [1, 4, 6], Rand(k * h, 1.0), Enumerable.Range(0, k).Select(_ => (Rand(inter * h, 0.8), Rand(inter * h, 0.8), Rand(h * inter, 0.8))).ToArray());
        var x = Rand(n * h, 1.5);
        var target = Rand(n * h, 0.5);
        var w = Enumerable.Range(0, n).Select(_ => 0.2 + random.NextDouble()).ToArray();
        var tokens = new[] { 0, 2, 3, 5, 6, 8, 2 };   // a mini-batch, one token twice

        var grads = student.Parameters.Select(p => new float[p.Length]).ToArray();
        double loss = student.Loss(x, target, w, tokens, grads);

        var p64 = student.Parameters.Select(a => a.Select(v => (double)v).ToArray()).ToArray();
        var x64 = x.Select(v => (double)v).ToArray();
        var t64 = target.Select(v => (double)v).ToArray();
        double Oracle() => OracleLoss(kind, norm, topK, h, inter, p64, x64, t64, w, tokens);
        double reference = Oracle();
        Assert.True(Math.Abs(loss - reference) <= 1e-5 * Math.Max(1, reference), $"loss {loss} vs oracle {reference}");

        const double eps = 1e-6;
        string[] names = ["router", .. Enumerable.Range(0, k).Select(e => $"gate{e}"), .. Enumerable.Range(0, k).Select(e => $"up{e}"), .. Enumerable.Range(0, k).Select(e => $"down{e}")];
        for (int a = 0; a < p64.Length; a++)
        {
            double num = 0, den = 0;
            for (int i = 0; i < p64[a].Length; i++)
            {
                double keep = p64[a][i];
                p64[a][i] = keep + eps;
                double plus = Oracle();
                p64[a][i] = keep - eps;
                double minus = Oracle();
                p64[a][i] = keep;
                double fd = (plus - minus) / (2 * eps);
                Assert.True(Math.Abs(grads[a][i] - fd) <= 1e-3 * Math.Abs(fd) + 1e-4, $"{names[a]}[{i}]: analytic {grads[a][i]:E6}, finite difference {fd:E6}");
                num += (grads[a][i] - fd) * (grads[a][i] - fd);
                den += fd * fd;
            }
            Assert.True(den > 0, $"{names[a]}: the finite differences are all zero; the test would not see a wrong gradient");
            Assert.True(Math.Sqrt(num / den) < 1e-4, $"{names[a]}: relative gradient error {Math.Sqrt(num / den):E2}");
        }
    }

    [Fact]
    public void The_gradient_check_fails_on_a_gradient_one_percent_off()
    {
        // the tolerance of the check above is tight enough to see a 1% error in any one parameter array
        const int h = 4, inter = 3;
        var moe = new MoeSpec(4, 1, inter, RouterKind.TopKSigmoid, false, 0, false, ExpertLayout.PerExpert);
        var random = new Random(5);
        float[] Rand(int count) => Enumerable.Range(0, count).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();
        var student = new MoeStudent(moe, h, [0, 2], Rand(2 * h), [(Rand(inter * h), Rand(inter * h), Rand(h * inter)), (Rand(inter * h), Rand(inter * h), Rand(h * inter))]);
        var x = Rand(3 * h).Select(v => (double)v).ToArray();
        var target = Rand(3 * h).Select(v => (double)v).ToArray();
        double[] w = [1, 1, 1];
        int[] tokens = [0, 1, 2];
        var grads = student.Parameters.Select(p => new float[p.Length]).ToArray();
        student.Loss(x.Select(v => (float)v).ToArray(), target.Select(v => (float)v).ToArray(), w, tokens, grads);
        var p64 = student.Parameters.Select(a => a.Select(v => (double)v).ToArray()).ToArray();
        for (int a = 0; a < p64.Length; a++)
        {
            double exact = 0, off = 0, den = 0;
            for (int i = 0; i < p64[a].Length; i++)
            {
                double keep = p64[a][i];
                p64[a][i] = keep + 1e-6;
                double plus = OracleLoss(RouterKind.TopKSigmoid, false, 1, h, inter, p64, x, target, w, tokens);
                p64[a][i] = keep - 1e-6;
                double minus = OracleLoss(RouterKind.TopKSigmoid, false, 1, h, inter, p64, x, target, w, tokens);
                p64[a][i] = keep;
                double fd = (plus - minus) / 2e-6;
                exact += (grads[a][i] - fd) * (grads[a][i] - fd);
                off += (grads[a][i] * 1.01 - fd) * (grads[a][i] * 1.01 - fd);
                den += fd * fd;
            }
            if (den == 0) continue;   // an expert no token went to
            Assert.True(Math.Sqrt(exact / den) < 1e-4);
            Assert.False(Math.Sqrt(off / den) < 1e-4);
        }
    }

    [Fact]
    public void Student_forward_is_the_pruned_reference_layer()
    {
        // untrained, the student is the pruned layer: the reference engine's experts, routed among the kept ones
        using var model = ReferenceModel.Load(TestPaths.Golden("mixtral"));
        var act = CalibrationActivations.Collect(model, [[1, 5, 9, 2, 7, 3, 11, 4]]);
        int layer = act.Inputs.Keys.Min();
        var math = new MoeLayerMath(model, layer);
        int[] kept = [1, 3, 4, 6];
        int h = math.Hidden;
        var rows = kept.SelectMany(e => math.RouterWeights.AsSpan(e * h, h).ToArray()).ToArray();
        var student = new MoeStudent(model.Config.Moe, h, kept, rows, kept.Select(math.Weights).ToArray());
        var y = student.Forward(act.Inputs[layer]);
        var allowed = Enumerable.Range(0, math.Experts).Select(kept.Contains).ToArray();
        var routes = math.Route(math.Logits(act.Inputs[layer]), allowed);
        for (int t = 0; t < act.Tokens; t++)
        {
            var expected = new float[h];
            foreach (var r in routes.Where(r => r.Token == t))
            {
                var c = MoeLayerMath.Contribution(math.Weights(r.Expert), act.Inputs[layer].AsSpan(t * h, h), [r.Weight], math.ScalesInput, h, math.Moe.ExpertIntermediate);
                for (int j = 0; j < h; j++) expected[j] += c[j];
            }
            for (int j = 0; j < h; j++) Assert.Equal(expected[j], y[t * h + j], 1e-5f);
        }
    }

    // ---------------------------------------------------------------- training on golden checkpoints

    private static int[][] Sequences(int vocab, int count, int length, int seed)
    {
        var random = new Random(seed);
        return Enumerable.Range(0, count).Select(_ => Enumerable.Range(0, length).Select(_ => random.Next(vocab)).ToArray()).ToArray();
    }

    private static (ProfileWeights, KdReport) DistilGolden(string golden, KdOptions options, int keep)
    {
        using var model = ReferenceModel.Load(TestPaths.Golden(golden));
        var domain = new CalibrationDomain("d", Sequences(model.Config.VocabSize, 12, 24, 3), []);
        var docs = KnowledgeDistiller.Sample(new Dictionary<string, double> { ["d"] = 1 }, _ => domain, options, "p");
        var kept = model.Config.Layers.Where(l => l.FeedForward == FeedForwardKind.Moe).ToDictionary(l => l.Index, _ => Enumerable.Range(0, keep).ToArray());
        return KnowledgeDistiller.Distil(model, "p", kept, docs, options, null, CancellationToken.None);
    }

    [Theory]
    [InlineData("llama4")]
    [InlineData("mixtral")]
    [InlineData("olmoe")]
    public void Kd_lowers_every_pruned_layers_held_out_error_and_is_deterministic(string golden)
    {
        var options = new KdOptions { Steps = 40, BatchTokens = 32, Tokens = 400, LearningRate = 3e-3, MaxPasses = 1000 };
        using var model = ReferenceModel.Load(TestPaths.Golden(golden));
        int keep = Math.Max(model.Config.Moe.TopK, model.Config.Moe.NumExperts / 2);
        var (weights, report) = DistilGolden(golden, options, keep);
        Assert.NotEmpty(report.Layers);
        foreach (var layer in report.Layers)
        {
            Assert.Equal(options.Steps + 1, layer.HeldOut.Length);
            Assert.True(layer.After <= layer.Before, $"layer {layer.Layer}: {layer.Before} → {layer.After}");
        }
        Assert.Contains(report.Layers, l => l.After < 0.98 * l.Before);
        Assert.Equal(report.Layers.Count * keep, weights.Experts.Count);
        Assert.All(weights.Routers.Values, r => Assert.Equal(keep * model.Config.HiddenSize, r.Length));

        var (again, _) = DistilGolden(golden, options, keep);
        foreach (var (key, m) in weights.Experts)
        {
            Assert.Equal(m.Down, again.Experts[key].Down);
            Assert.Equal(m.Gate, again.Experts[key].Gate);
        }
        var (otherSeed, _) = DistilGolden(golden, options with { Seed = 99 }, keep);
        Assert.Contains(weights.Experts, p => !p.Value.Down.SequenceEqual(otherSeed.Experts[p.Key].Down));
    }

    [Theory]
    [InlineData(KdTarget.Layer)]
    [InlineData(KdTarget.Residual)]
    public void Later_layers_learn_on_the_pruned_models_activations(KdTarget kdTarget)
    {
        // the second MoE layer's step-0 error is the pruned layer on inputs that the distilled first layer produced:
        // recompute it independently by running the reference engine layer by layer with the first layer replaced;
        // the Residual target is the teacher's hidden state (the unpruned model, layer by layer) minus the student's
        // after attention and the shared expert
        var options = new KdOptions { Steps = 20, BatchTokens = 32, Tokens = 400, LearningRate = 3e-3, MaxPasses = 1000, Target = kdTarget };
        using var model = ReferenceModel.Load(TestPaths.Golden("mixtral"));
        var domain = new CalibrationDomain("d", Sequences(model.Config.VocabSize, 12, 24, 3), []);
        var docs = KnowledgeDistiller.Sample(new Dictionary<string, double> { ["d"] = 1 }, _ => domain, options, "p");
        var moeLayers = model.Config.Layers.Where(l => l.FeedForward == FeedForwardKind.Moe).Select(l => l.Index).ToArray();
        var kept = moeLayers.ToDictionary(l => l, _ => new[] { 0, 2, 5, 7 });
        var (weights, report) = KnowledgeDistiller.Distil(model, "p", kept, docs, options, null, CancellationToken.None);
        int first = moeLayers[0], second = moeLayers[1];
        int h = model.Config.HiddenSize;
        var studentFirst = new MoeStudent(model.Config.Moe, h, kept[first], weights.Routers[first],
            kept[first].Select(e => (weights.Experts[(first, e)].Gate, weights.Experts[(first, e)].Up, weights.Experts[(first, e)].Down)).ToArray());
        var math = new MoeLayerMath(model, second);
        var prunedSecond = new MoeStudent(model.Config.Moe, h, kept[second],
            kept[second].SelectMany(e => math.RouterWeights.AsSpan(e * h, h).ToArray()).ToArray(), kept[second].Select(math.Weights).ToArray());
        var held = docs.Where(d => d.HeldOut).ToArray();
        double num = 0, den = 0;
        foreach (var d in held)
        {
            var x = model.Embed(d.Tokens);
            var xt = model.Embed(d.Tokens);
            float[] normed = [];
            foreach (var layer in model.Config.Layers.Where(l => l.Index <= second))
            {
                normed = model.AttentionStep(layer.Index, x);
                model.FeedForwardStep(layer.Index, xt, model.AttentionStep(layer.Index, xt));
                if (layer.Index == second) break;
                model.FeedForwardStep(layer.Index, x, normed, layer.Index == first ? n => studentFirst.Forward(n.Span) : null);
            }
            float[] teacher;
            if (kdTarget == KdTarget.Layer) teacher = KnowledgeDistiller.TeacherRouted(math, normed);
            else
            {
                model.FeedForwardStep(second, x, normed, n => new float[n.Length]);
                teacher = xt.Zip(x, (a, b) => a - b).ToArray();
            }
            var y = prunedSecond.Forward(normed);
            for (int i = 0; i < y.Length; i++)
            {
                num += d.TokenWeight * (y[i] - teacher[i]) * (y[i] - teacher[i]);
                den += d.TokenWeight * teacher[i] * teacher[i];
            }
        }
        var curve = report.Layers.Single(l => l.Layer == second);
        Assert.Equal(num / den, curve.Before, 4);
    }

    [Fact]
    public void Refit_on_the_pruned_activations_never_raises_a_layers_held_out_error()
    {
        using var model = ReferenceModel.Load(TestPaths.Golden("mixtral"));
        var options = new KdOptions { Tokens = 400 };
        var domain = new CalibrationDomain("d", Sequences(model.Config.VocabSize, 12, 24, 3), []);
        var docs = KnowledgeDistiller.Sample(new Dictionary<string, double> { ["d"] = 1 }, _ => domain, options, "p");
        var kept = model.Config.Layers.Where(l => l.FeedForward == FeedForwardKind.Moe).ToDictionary(l => l.Index, _ => new[] { 1, 2, 5, 6 });
        var (weights, report) = KnowledgeDistiller.Distil(model, "p", kept, docs, options, null, CancellationToken.None, refit: true);
        Assert.Empty(weights.Routers);
        foreach (var l in report.Layers)
        {
            Assert.Equal(2, l.HeldOut.Length);
            Assert.True(l.After <= l.Before);
            Assert.Equal(l.HeldOut[1] < l.HeldOut[0] ? 1 : 0, l.BestStep);
        }
    }

    // ---------------------------------------------------------------- bad input

    [Fact]
    public void Too_little_calibration_text_for_the_step_count_is_refused_in_one_line()
    {
        var options = new KdOptions { Steps = 5000, BatchTokens = 256, Tokens = 400 };
        var e = Assert.Throws<Behemoth.Package.BehemothException>(() => DistilGolden("llama4", options, 2));
        Assert.Contains("too little calibration text for 5000 steps", e.Message);
        Assert.Contains("--kd-steps", e.Message);
        Assert.DoesNotContain('\n', e.Message);

        using var model = ReferenceModel.Load(TestPaths.Golden("llama4"));
        var one = new CalibrationDomain("tiny", [[1, 2, 3]], []);
        e = Assert.Throws<Behemoth.Package.BehemothException>(() =>
            KnowledgeDistiller.Sample(new Dictionary<string, double> { ["tiny"] = 1 }, _ => one, new KdOptions(), "glasses"));
        Assert.Contains("domain 'tiny' has 1 calibration document(s)", e.Message);
    }

    [Fact]
    public void Kd_of_a_profile_keeping_every_expert_says_so_and_changes_nothing()
    {
        using var model = ReferenceModel.Load(TestPaths.Golden("mixtral"));
        var domain = new CalibrationDomain("d", Sequences(model.Config.VocabSize, 6, 16, 2), []);
        var stats = new ExpertStats { Model = StatsModel.Of(model), Domains = new() { ["d"] = ExpertProfiler.ProfileDomain(model, domain) } };
        var carver = new ProfileCarver(model, stats, _ => domain);
        var messages = new List<string>();
        var all = carver.Carve(new CarveTarget("laptop", "all", new Dictionary<string, double> { ["d"] = 1 },
            scores => scores.ToDictionary(p => p.Key, p => Enumerable.Range(0, p.Value.Length).ToArray())), PruningCriterion.Reap, Distillation.Kd,
            new Progress(messages));
        Assert.Null(all.Weights);
        Assert.Contains(messages, m => m.Contains("laptop: keeps every expert, nothing to distil"));
        Assert.Empty(carver.KdReports);

        var missing = Assert.Throws<Behemoth.Package.BehemothException>(() => carver.Carve(new CarveTarget("glasses", "g", new Dictionary<string, double> { ["en-it"] = 1 },
            scores => PruningPlanner.KeepRatio(scores, 2, 0.5)), PruningCriterion.Reap, Distillation.Kd));
        Assert.Contains("domain 'en-it' is not in the stats", missing.Message);
    }

    private sealed class Progress(List<string> messages) : IProgress<string>
    {
        public void Report(string value) => messages.Add(value);
    }
}
