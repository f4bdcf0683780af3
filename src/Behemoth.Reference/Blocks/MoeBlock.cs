using System.Numerics.Tensors;
using Behemoth.Formats.Config;

namespace Behemoth.Reference.Blocks;

/// <summary>What the router decided for one token in one MoE layer.</summary>
public readonly record struct Routing(int Token, int Expert, float Weight);

/// <summary>
/// The sparse MoE feed-forward: route each token to its top-k experts, run each expert once on the tokens
/// it received (so only chosen experts' weights are read), combine, and add the shared expert.
/// </summary>
internal static class MoeBlock
{
    /// <summary>
    /// <paramref name="routed"/>, when given, is the routed experts' combined output [tokens, hidden] computed elsewhere
    /// (a pruned or distilled layer): only the shared expert is then computed here.
    /// </summary>
    public static void Forward(DecoderConfig c, Weights w, int layer, ReadOnlySpan<float> x, Span<float> y, List<Routing>? trace, float[]? routed = null)
    {
        var m = c.Moe;
        var n = c.Names;
        int h = c.HiddenSize, seq = x.Length / h;
        string L(string template, int e = -1) => TensorNames.Format(template, layer, e);

        if (routed is not null)
        {
            routed.AsSpan(0, seq * h).CopyTo(y);
            AddShared(c, w, layer, x, y, seq);
            return;
        }

        // router_logits = self.gate(hidden_states)   [T, E]
        var logits = new float[seq * m.NumExperts];
        using (var router = w.View(L(n.Router))) Ops.Linear(x, router.Span, default, logits, h, m.NumExperts);

        var routes = new List<Routing>(seq * m.TopK);
        for (int t = 0; t < seq; t++)
            Router.Route(m, logits.AsSpan(t * m.NumExperts, m.NumExperts), t, routes);
        trace?.AddRange(routes);

        y[..(seq * h)].Clear();
        foreach (var group in routes.GroupBy(r => r.Expert).OrderBy(g => g.Key))
        {
            var chosen = group.ToList();
            var input = new float[chosen.Count * h];
            for (int i = 0; i < chosen.Count; i++)
            {
                var row = input.AsSpan(i * h, h);
                x.Slice(chosen[i].Token * h, h).CopyTo(row);
                // Llama 4: routed_in = hidden_states * sigmoid(score), the expert sees a scaled input.
                if (m.Router == RouterKind.TopKSigmoid) TensorPrimitives.Multiply(row, chosen[i].Weight, row);
            }
            var output = new float[chosen.Count * h];
            int e = group.Key;
            if (m.Layout == ExpertLayout.Fused)
                FeedForward.FusedSwiGlu(w, L(n.FusedGateUp!), L(n.FusedDown!), e, input, output, h, m.ExpertIntermediate);
            else
                FeedForward.SwiGlu(w, L(n.ExpertGate!, e), L(n.ExpertUp!, e), L(n.ExpertDown!, e), input, output, h, m.ExpertIntermediate);
            for (int i = 0; i < chosen.Count; i++)
            {
                var dst = y.Slice(chosen[i].Token * h, h);
                float scale = m.Router == RouterKind.TopKSigmoid ? 1f : chosen[i].Weight;
                TensorPrimitives.MultiplyAdd(output.AsSpan(i * h, h), scale, dst, dst);
            }
        }

        AddShared(c, w, layer, x, y, seq);
    }

    private static void AddShared(DecoderConfig c, Weights w, int layer, ReadOnlySpan<float> x, Span<float> y, int seq)
    {
        var m = c.Moe;
        var n = c.Names;
        int h = c.HiddenSize;
        string L(string template, int e = -1) => TensorNames.Format(template, layer, e);
        if (m.SharedIntermediate <= 0 || n.SharedGate is null) return;
        var shared = new float[seq * h];
        FeedForward.SwiGlu(w, L(n.SharedGate), L(n.SharedUp!), L(n.SharedDown!), x, shared, h, m.SharedIntermediate);
        if (m.SharedExpertSigmoidGate)
        {
            // shared_expert_output = sigmoid(shared_expert_gate(x)) * shared_expert(x)
            var gate = new float[seq];
            using (var g = w.View(L(n.SharedExpertGate!))) Ops.Linear(x, g.Span, default, gate, h, 1);
            for (int t = 0; t < seq; t++)
                TensorPrimitives.Multiply(shared.AsSpan(t * h, h), (float)(1 / (1 + Math.Exp(-gate[t]))), shared.AsSpan(t * h, h));
        }
        TensorPrimitives.Add(y[..(seq * h)], shared, y[..(seq * h)]);
    }
}
