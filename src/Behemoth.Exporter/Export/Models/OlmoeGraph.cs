using Behemoth.Exporter.Export.Blocks;
using Behemoth.Formats.Config;

namespace Behemoth.Exporter.Export.Models;

/// <summary>
/// <c>OlmoeForCausalLM</c> (modeling_olmoe.py): q_norm / k_norm over the whole q and k projections (before the
/// heads are split), then the optional <c>clip_qkv</c> clamp of q, k and v; biases with <c>attention_bias</c>;
/// every layer a softmax top-k MoE block (renormalised with <c>norm_topk_prob</c>), no shared expert.
/// </summary>
internal sealed class OlmoeGraph(GraphContext x) : DecoderGraph(x)
{
    protected override string Attention(LayerSpec layer, string hidden)
    {
        var n = C.Names;
        var (q, k, v) = Attn.Project(layer, hidden);
        q = Norms.Rms(X, "q_norm", q, GraphContext.L(n.QNorm, layer.Index), C.NumHeads * C.HeadDim);
        k = Norms.Rms(X, "k_norm", k, GraphContext.L(n.KNorm, layer.Index), C.NumKvHeads * C.HeadDim);
        if (C.ClipQkv is double clip) (q, k, v) = Attn.Clip(q, k, v, clip);
        (q, k, v) = Attn.ToHeads(q, k, v);
        return Attn.Attend(layer, q, k, v, rotate: true);
    }

    protected override string FeedForward(LayerSpec layer, string hidden) =>
        Blocks.FeedForward.ForLayer(X, layer, hidden, SharedExpertKind.None);
}
