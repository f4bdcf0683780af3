using Behemoth.Exporter.Export.Blocks;
using Behemoth.Formats.Config;

namespace Behemoth.Exporter.Export.Models;

/// <summary>
/// <c>Qwen2MoeForCausalLM</c> (modeling_qwen2_moe.py): attention with q/k/v biases and RoPE (sliding on the layers
/// Qwen's window rule names); MoE layers add to the routed experts a shared expert scaled by
/// sigmoid(shared_expert_gate(x)); the layers <c>mlp_only_layers</c> / <c>decoder_sparse_step</c> leave out are a dense MLP.
/// </summary>
internal sealed class Qwen2MoeGraph(GraphContext x) : DecoderGraph(x)
{
    protected override string Attention(LayerSpec layer, string hidden)
    {
        var (q, k, v) = Attn.Project(layer, hidden);   // with the q/k/v biases
        (q, k, v) = Attn.ToHeads(q, k, v);
        return Attn.Attend(layer, q, k, v, rotate: true);
    }

    protected override string FeedForward(LayerSpec layer, string hidden) =>
        Blocks.FeedForward.ForLayer(X, layer, hidden, SharedExpertKind.SigmoidGated);
}
