using Behemoth.Exporter.Export;
using Behemoth.Exporter.Pruning;
using Behemoth.Reference;
using Behemoth.Reference.Blocks;
using Behemoth.Tests;
using Behemoth.Package;

namespace Behemoth.Exporter.Tests;

/// <summary>Expert profiling, pruning criteria, allocation under a budget and distillation, on the golden checkpoints.</summary>
public sealed class PruningTests
{
    private static int[][] Sequences(int vocab, int count, int length, int seed)
    {
        var random = new Random(seed);
        return Enumerable.Range(0, count).Select(_ => Enumerable.Range(0, length).Select(_ => random.Next(vocab)).ToArray()).ToArray();
    }

    [Theory]
    [InlineData("mixtral")]
    [InlineData("llama4")]
    public void Profiled_frequencies_are_the_reference_engines_routing(string golden)
    {
        using var model = ReferenceModel.Load(TestPaths.Golden(golden));
        var seqs = Sequences(model.Config.VocabSize, 3, 12, 1);
        var stats = ExpertProfiler.ProfileDomain(model, new CalibrationDomain("d", seqs, []));

        // independent count: the routing decisions the reference engine records while computing logits
        var counts = new Dictionary<int, int[]>();
        foreach (var seq in seqs)
        {
            var trace = new List<List<Routing>>();
            model.Forward(seq, trace);
            var moeLayers = model.Config.Layers.Where(l => l.FeedForward == Formats.Config.FeedForwardKind.Moe).Select(l => l.Index).ToArray();
            for (int i = 0; i < trace.Count; i++)
                foreach (var r in trace[i])
                    (counts.TryGetValue(moeLayers[i], out var c) ? c : counts[moeLayers[i]] = new int[model.Config.Moe.NumExperts])[r.Expert]++;
        }
        Assert.Equal(36, stats.Tokens);
        foreach (var layer in stats.Layers)
        {
            for (int e = 0; e < layer.Frequency.Length; e++)
                Assert.Equal(counts[layer.Layer][e] / 36.0, layer.Frequency[e], 12);
            Assert.Equal(model.Config.Moe.TopK, layer.Frequency.Sum(), 9);
            Assert.All(Enumerable.Range(0, layer.Reap.Length), e => Assert.True(layer.Frequency[e] > 0 ? layer.Reap[e] > 0 : layer.Reap[e] == 0));
        }
    }

    [Fact]
    public void Allocation_keeps_top_k_per_layer_and_larger_budgets_keep_supersets()
    {
        var random = new Random(3);
        var scores = Enumerable.Range(0, 4).ToDictionary(l => l, _ => Enumerable.Range(0, 8).Select(_ => random.NextDouble()).ToArray());
        Dictionary<int, int[]>? previous = null;
        for (int keep = 8; keep <= 32; keep += 4)
        {
            var kept = PruningPlanner.Allocate(scores, topK: 2, keep);
            Assert.Equal(keep, kept.Values.Sum(k => k.Length));
            Assert.All(kept.Values, k => Assert.True(k.Length >= 2));
            if (previous is not null) Assert.All(previous, p => Assert.Subset(kept[p.Key].ToHashSet(), p.Value.ToHashSet()));
            previous = kept;
        }
    }

    [Fact]
    public void A_device_below_the_smallest_model_is_refused_with_the_minimum()
    {
        using var model = ReferenceModel.Load(TestPaths.Golden("mixtral"));
        var size = new SizeModel(model.Config, WeightType.Int4, 16);
        var device = new DeviceSpec { Name = "watch", MemoryBytes = size.NonExpert, ContextTokens = 64, Domains = new Dictionary<string, double> { ["d"] = 1 } };
        var scores = Enumerable.Range(0, model.Config.NumLayers).ToDictionary(l => l, _ => new double[8]);
        var e = Assert.Throws<Behemoth.Package.BehemothException>(() => PruningPlanner.ForDevice(device, scores, 2, size));
        Assert.Contains("below the smallest possible model", e.Message);
        Assert.Contains("watch", e.Message);
    }

    [Fact]
    public void Greedy_reconstruction_and_refit_lower_the_layer_error_on_calibration_activations()
    {
        using var model = ReferenceModel.Load(TestPaths.Golden("mixtral"));
        var act = CalibrationActivations.Collect(model, Sequences(model.Config.VocabSize, 6, 16, 5));
        int layer = act.Inputs.Keys.Min();
        var math = new MoeLayerMath(model, layer);
        var inputs = new ReconstructionInputs(math, act.Inputs[layer], Enumerable.Repeat(1.0 / act.Tokens, act.Tokens).ToArray());
        double Error(bool[] kept) => Enumerable.Range(0, inputs.Tokens).Sum(t => inputs.Error(t, inputs.Output(t, kept).Y));

        var scores = Criteria.GreedyReconstruction(inputs);
        var best = Enumerable.Range(0, 8).OrderByDescending(e => scores[e]).Take(4).ToHashSet();
        double greedy = Error(Enumerable.Range(0, 8).Select(best.Contains).ToArray());
        var randomErrors = Enumerable.Range(0, 10).Select(s =>
        {
            var pick = Enumerable.Range(0, 8).OrderBy(_ => new Random(s * 31 + 7).Next()).Take(4).ToHashSet();
            return Error(Enumerable.Range(0, 8).Select(pick.Contains).ToArray());
        }).ToArray();
        Assert.True(greedy <= randomErrors.Min() + 1e-12, $"greedy {greedy:E3} vs best random {randomErrors.Min():E3}");

        // refit the kept experts: the layer output moves towards the full layer's
        var kept = best.Order().ToArray();
        var (experts, router) = Distiller.Refit(math, kept, inputs);
        Assert.Equal(kept.Length * math.Hidden, router.Length);
        double refitError = 0;
        var full = math.RouterWeights.ToArray();
        for (int i = 0; i < kept.Length; i++) router.AsSpan(i * math.Hidden, math.Hidden).CopyTo(full.AsSpan(kept[i] * math.Hidden));
        var logits = math.Logits(act.Inputs[layer], full);
        var routes = math.Route(logits, Enumerable.Range(0, 8).Select(best.Contains).ToArray());
        int h = math.Hidden;
        for (int t = 0; t < inputs.Tokens; t++)
        {
            var y = new float[h];
            foreach (var r in routes.Where(r => r.Token == t))
            {
                var w = experts.TryGetValue((layer, r.Expert), out var m) ? (m.Gate, m.Up, m.Down) : math.Weights(r.Expert);
                var c = MoeLayerMath.Contribution(w, act.Inputs[layer].AsSpan(t * h, h), [r.Weight], false, h, model.Config.Moe.ExpertIntermediate);
                for (int j = 0; j < h; j++) y[j] += c[j];
            }
            refitError += inputs.Error(t, y);
        }
        Assert.True(refitError < greedy, $"refit {refitError:E3} vs pruned {greedy:E3}");
    }

    [Fact]
    public void Stats_from_another_model_are_refused()
    {
        using var mixtral = ReferenceModel.Load(TestPaths.Golden("mixtral"));
        using var qwen = ReferenceModel.Load(TestPaths.Golden("qwen3_moe"));
        var stats = new ExpertStats { Model = StatsModel.Of(mixtral), Domains = new() };
        var e = Assert.Throws<Behemoth.Package.BehemothException>(() => stats.EnsureFor(StatsModel.Of(qwen), "stats.json"));
        Assert.Contains("stats.json", e.Message);
        Assert.Contains("another model", e.Message);
    }
}
