using Behemoth.Exporter.Export.Blocks;
using Behemoth.Formats.Config;

namespace Behemoth.Exporter.Export.Models;

/// <summary>
/// <c>MixtralForCausalLM</c> (modeling_mixtral.py): Llama attention with RoPE on every layer (all sliding when the
/// config has <c>sliding_window</c>), and on every layer a sparse MoE block whose softmax router is renormalised
/// over the top-k experts. No biases, no QK norm, no shared expert.
/// </summary>
internal sealed class MixtralGraph(GraphContext x) : DecoderGraph(x)
{
    protected override string Attention(LayerSpec layer, string hidden)
    {
        var (q, k, v) = Attn.Project(layer, hidden);
        (q, k, v) = Attn.ToHeads(q, k, v);
        return Attn.Attend(layer, q, k, v, rotate: true);
    }

    protected override string FeedForward(LayerSpec layer, string hidden) =>
        Blocks.FeedForward.ForLayer(X, layer, hidden, SharedExpertKind.None);
}
