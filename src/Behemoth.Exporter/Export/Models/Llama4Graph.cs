using Behemoth.Exporter.Export.Blocks;
using Behemoth.Exporter.Onnx;
using Behemoth.Formats.Config;
using static Behemoth.Exporter.Export.Blocks.Ops;

namespace Behemoth.Exporter.Export.Models;

/// <summary>
/// <c>Llama4ForCausalLM</c> and the text tower of <c>Llama4ForConditionalGeneration</c> (modeling_llama4.py):
/// interleaved RoPE on the RoPE layers, followed by a weightless RMS ("L2") norm of q and k per head
/// (<c>use_qk_norm</c>); NoPE layers scale q by the attention temperature instead; chunked attention where the config
/// says so. MoE layers route each token to the top-k experts by sigmoid of their logits, the score scaling the
/// expert's input, plus an always-on shared expert; the other layers are a dense MLP (<c>intermediate_size_mlp</c>).
/// </summary>
internal sealed class Llama4Graph(GraphContext x) : DecoderGraph(x)
{
    private string _temperature = "";   // per position, [batch, seq, 1, 1]

    /// <summary>Temperature tuning: q ·= log(floor((pos + 1) / floor_scale) + 1) · attn_scale + 1 on NoPE layers.</summary>
    protected override void Prepare()
    {
        if (!C.Layers.Any(l => l.TemperatureTuning)) return;
        using var scope = G.Scope("/model/attn_temperature");
        string pos = G.Op("Cast", [PositionIds], Attr(("to", (int)ElementType.Float)));
        string floor = G.Op("Floor", [G.Op("Div", [G.Op("Add", [pos, G.FloatScalar(1f)]), G.FloatScalar((float)C.FloorScale)])]);
        string scale = G.Op("Add", [G.Op("Mul", [G.Op("Log", [G.Op("Add", [floor, G.FloatScalar(1f)])]), G.FloatScalar((float)C.AttnScale)]), G.FloatScalar(1f)]);
        _temperature = G.Op("Unsqueeze", [scale, G.Int64Vector(2, 3)]);
    }

    protected override string Attention(LayerSpec layer, string hidden)
    {
        var (q, k, v) = Attn.Project(layer, hidden);
        (q, k, v) = Attn.ToHeads(q, k, v);
        // The QK norm comes after RoPE, so those layers rotate here rather than in the attention kernel.
        bool normAfterRope = layer.QkNorm == QkNormKind.L2;
        if (normAfterRope)
        {
            (q, k) = Attn.Rotate(q, k);
            q = Norms.L2(X, "q_norm", q, C.HeadDim);
            k = Norms.L2(X, "k_norm", k, C.HeadDim);
        }
        if (layer.TemperatureTuning)
            using (G.Scope("temperature")) q = G.Op("Mul", [q, _temperature]);
        return Attn.Attend(layer, q, k, v, rotate: layer.UseRope && !normAfterRope);
    }

    protected override string FeedForward(LayerSpec layer, string hidden) =>
        Blocks.FeedForward.ForLayer(X, layer, hidden, SharedExpertKind.Plain);
}
