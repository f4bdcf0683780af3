using Behemoth.Exporter.Export.Blocks;
using Behemoth.Formats.Config;

namespace Behemoth.Exporter.Export.Models;

/// <summary>
/// <c>Qwen3MoeForCausalLM</c> (modeling_qwen3_moe.py): Qwen2-MoE without the shared expert, with an RMSNorm of each
/// q and k head (weights [head_dim]) before RoPE and <c>attention_bias</c> on all four projections; dense MLP layers
/// where <c>mlp_only_layers</c> / <c>decoder_sparse_step</c> say so.
/// </summary>
internal sealed class Qwen3MoeGraph(GraphContext x) : DecoderGraph(x)
{
    protected override string Attention(LayerSpec layer, string hidden)
    {
        var n = C.Names;
        var (q, k, v) = Attn.Project(layer, hidden);
        (q, k, v) = Attn.ToHeads(q, k, v);
        // q_norm / k_norm over each head, before RoPE
        q = Norms.Rms(X, "q_norm", q, GraphContext.L(n.QNorm, layer.Index), C.HeadDim);
        k = Norms.Rms(X, "k_norm", k, GraphContext.L(n.KNorm, layer.Index), C.HeadDim);
        return Attn.Attend(layer, q, k, v, rotate: true);
    }

    protected override string FeedForward(LayerSpec layer, string hidden) =>
        Blocks.FeedForward.ForLayer(X, layer, hidden, SharedExpertKind.None);
}
