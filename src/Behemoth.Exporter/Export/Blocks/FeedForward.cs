using Behemoth.Formats.Config;
using static Behemoth.Exporter.Export.Blocks.Ops;

namespace Behemoth.Exporter.Export.Blocks;

/// <summary>SwiGLU feed-forward: the dense MLP of non-MoE layers and the shared experts of MoE layers.</summary>
internal static class FeedForward
{
    /// <summary>down_proj(silu(gate_proj(x)) * up_proj(x)) with the checkpoint's nn.Linear weights (tensor names resolved).</summary>
    public static string SwiGlu(GraphContext x, string input, string gate, string up, string down, int intermediate)
    {
        var g = x.G;
        int h = x.C.HiddenSize;
        string gated = x.Linear("gate_proj", input, gate, intermediate, h);
        string upped = x.Linear("up_proj", input, up, intermediate, h);
        string act;
        using (g.Scope("act_fn"))
            act = g.Op("Mul", [g.Op("Mul", [gated, g.Op("Sigmoid", [gated])]), upped]);
        return x.Linear("down_proj", act, down, h, intermediate);
    }

    /// <summary>The dense MLP of layer <paramref name="layer"/>, under <c>mlp</c>.</summary>
    public static string Dense(GraphContext x, int layer, string input, int intermediate)
    {
        var n = x.C.Names;
        using var scope = x.G.Scope("mlp");
        return SwiGlu(x, input, GraphContext.L(n.DenseGate!, layer), GraphContext.L(n.DenseUp!, layer), GraphContext.L(n.DenseDown!, layer), intermediate);
    }

    /// <summary>
    /// The shared expert of an MoE layer, under <c>shared_expert</c>; with <paramref name="sigmoidGate"/> scaled by
    /// sigmoid(shared_expert_gate(x)) (Qwen2-MoE).
    /// </summary>
    public static string SharedExpert(GraphContext x, int layer, string input, bool sigmoidGate)
    {
        var n = x.C.Names;
        string shared;
        using (x.G.Scope("shared_expert"))
            shared = SwiGlu(x, input, GraphContext.L(n.SharedGate!, layer), GraphContext.L(n.SharedUp!, layer), GraphContext.L(n.SharedDown!, layer),
                x.C.Moe.SharedIntermediate);
        if (!sigmoidGate) return shared;
        using var scope = x.G.Scope("shared_expert_gate");
        string gate = x.G.Op("Sigmoid", [Gemm(x.G, input, x.W.Float(GraphContext.L(n.SharedExpertGate!, layer), 1, x.C.HiddenSize))]);
        return x.G.Op("Mul", [shared, gate]);
    }

    /// <summary>
    /// A decoder layer's feed-forward: its dense MLP, or, under <c>moe</c>, the routed experts plus the architecture's
    /// shared expert when it has one (<paramref name="shared"/>).
    /// </summary>
    public static string ForLayer(GraphContext x, LayerSpec layer, string input, SharedExpertKind shared)
    {
        if (layer.FeedForward == FeedForwardKind.Dense) return Dense(x, layer.Index, input, layer.DenseIntermediate);
        using var scope = x.G.Scope("moe");
        string routed = MoeBlock.Routed(x, layer.Index, input);
        if (shared == SharedExpertKind.None) return routed;
        return x.G.Op("Add", [routed, SharedExpert(x, layer.Index, input, sigmoidGate: shared == SharedExpertKind.SigmoidGated)]);
    }
}

/// <summary>Whether an architecture's MoE layers add a shared expert to the routed ones, and how.</summary>
internal enum SharedExpertKind
{
    /// <summary>Routed experts only (Mixtral, Qwen3-MoE, OLMoE).</summary>
    None,

    /// <summary>Plus the shared expert as is (Llama 4).</summary>
    Plain,

    /// <summary>Plus the shared expert scaled by sigmoid(shared_expert_gate(x)) (Qwen2-MoE).</summary>
    SigmoidGated,
}
