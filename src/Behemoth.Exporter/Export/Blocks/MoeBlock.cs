using Behemoth.Formats.Config;
using static Behemoth.Exporter.Export.Blocks.Ops;
using Behemoth.Package;

namespace Behemoth.Exporter.Export.Blocks;

/// <summary>
/// The routed experts of an MoE layer: the router (restricted to the experts the profile keeps), then ONNX Runtime's
/// MoE / QMoE kernel (<see cref="FusedMoe"/>) or standard ops (<see cref="DecomposedMoe"/>). Both take the routing
/// of the config: softmax top-k scaling the outputs, or Llama 4's sigmoid of the top logits scaling the inputs.
/// Architectures add their shared expert themselves (<see cref="FeedForward.SharedExpert"/>).
/// </summary>
internal static class MoeBlock
{
    /// <summary>
    /// Whether the routed experts go through ONNX Runtime's MoE / QMoE kernel. Not for sigmoid routing with k &gt; 1
    /// (each expert sees its own scaled input), and not for int8: QMoE's 8-bit path disagrees with its own
    /// dequantized weights on ONNX Runtime 1.31 (up to 0.8 on the golden logits), so int8 experts run as MatMulNBits.
    /// </summary>
    public static bool UsesFusedMoe(DecoderConfig c, ExportOptions o) =>
        o.Moe == MoeForm.Fused && !(c.Moe.Router == RouterKind.TopKSigmoid && c.Moe.TopK > 1) && o.Quant != WeightType.Int8;

    /// <summary>The routed experts' output [tokens, hidden] for x [tokens, hidden], under <c>router</c> and <c>experts</c>.</summary>
    public static string Routed(GraphContext x, int layer, string input)
    {
        string logits;
        using (x.G.Scope("router")) logits = Router(x, layer, input);
        // a distilled expert is this profile's own tensor; the others are the checkpoint's, shared
        var own = x.Plan.Profile(x.Profile).Weights;
        ExpertMatrices? Replaced(int e) => own?.Experts.GetValueOrDefault((layer, e));
        int[] kept = x.Plan.Kept(x.Profile, layer);
        using var scope = x.G.Scope("experts");
        if (!UsesFusedMoe(x.C, x.O))
            return DecomposedMoe.Write(x.G, x.W, x.C, layer, input, logits, kept, Replaced, x.Profile);
        if (x.Plan.OwnStack(x.Profile, layer))
            return FusedMoe.Write(x.G, x.W, x.C, layer, input, logits, kept, 0, kept.Length, Replaced, $"model.layers.{layer}.moe.{x.Profile}");
        return FusedMoe.Write(x.G, x.W, x.C, layer, input, logits, x.Plan.StorageOrder(layer), x.Plan.Start(x.Profile, layer), kept.Length, null, $"model.layers.{layer}.moe");
    }

    /// <summary>Router logits [tokens, kept experts]: the router's rows for the experts this profile keeps, in graph order.</summary>
    private static string Router(GraphContext x, int layer, string input)
    {
        var (c, w, profile) = (x.C, x.W, x.Profile);
        int h = c.HiddenSize;
        string name = GraphContext.L(c.Names.Router, layer);
        // A pruned layer routes among its kept experts only.
        int[] kept = x.Plan.Kept(profile, layer);
        var own = x.Plan.Profile(profile).Weights;
        string router;
        if (own?.Routers.TryGetValue(layer, out var refitted) == true)
        {
            // refitted rows are given in ascending id order; the graph's order is kept's
            var ascending = kept.Order().ToArray();
            router = w.Add($"{name}.{profile}", [kept.Length, h],
                () => kept.SelectMany(e => refitted.AsSpan(Array.IndexOf(ascending, e) * h, h).ToArray()).ToArray());
        }
        else if (kept.SequenceEqual(Enumerable.Range(0, c.Moe.NumExperts)))
            router = w.Float(name, c.Moe.NumExperts, h);
        else
            router = w.Add($"{name}.experts.{ExpertPlan.Key(kept)}", [kept.Length, h], () =>
            {
                float[] all = w.Read(name, c.Moe.NumExperts, h);
                return kept.SelectMany(e => all.AsSpan(e * h, h).ToArray()).ToArray();
            });
        return Gemm(x.G, input, router);
    }
}
