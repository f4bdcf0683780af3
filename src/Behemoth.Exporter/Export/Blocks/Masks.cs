using Behemoth.Formats.Config;
using static Behemoth.Exporter.Export.Blocks.Ops;
using Behemoth.Package;

namespace Behemoth.Exporter.Export.Blocks;

/// <summary>
/// The additive attention masks [batch, 1, seq, keys] of the explicit-op attention, built from positions: a key is
/// visible when it is a real token (attention_mask), not in the future, and inside the window or chunk. Key
/// positions are cumsum(attention_mask) - 1, as onnxruntime-genai numbers them. The layer's keys are the last ones
/// of the sequence: all of them for full attention; for sliding and chunked layers the runtime may keep only the
/// keys a later query can still see (at most one window or chunk), so the mask takes the last `keys` positions,
/// where keys is the length of the layer's present keys. Full-attention layers share one mask
/// (<c>/model/masks/full</c>); the others have one each (<c>/model/masks/layers.N</c>).
/// </summary>
internal sealed class Masks
{
    private const float MaskedScore = -1e30f;     // not -inf: a fully masked (padding) row stays finite
    private readonly Dictionary<(AttentionKind, int), string> _masks = new();

    public string For(GraphContext x, LayerSpec layer, string presentKeys)
    {
        var key = (layer.Attention, layer.Attention == AttentionKind.Full ? -1 : layer.Index);
        if (_masks.TryGetValue(key, out var cached)) return cached;
        var g = x.G;
        using var scope = g.Scope(layer.Attention == AttentionKind.Full ? "/model/masks/full" : $"/model/masks/layers.{layer.Index}");
        string attentionMask = DecoderGraph.AttentionMask;
        string one = g.Int64Scalar(1);
        string keyPos = g.Op("Sub", [g.Op("CumSum", [attentionMask, g.Int64Scalar(1)]), one]);   // [batch, total]
        string realKeys = attentionMask;
        if (layer.Attention != AttentionKind.Full)
        {
            // the last `keys` columns: Slice(starts = -keys, ends = max) along the sequence axis
            string keys = g.Op("Gather", [g.Op("Shape", [presentKeys]), g.Int64Vector(2)], Attr(("axis", 0)));
            string starts = g.Op("Neg", [keys]);
            string ends = g.Int64Vector(long.MaxValue), axes = g.Int64Vector(1);
            keyPos = g.Op("Slice", [keyPos, starts, ends, axes]);
            realKeys = g.Op("Slice", [attentionMask, starts, ends, axes]);
        }
        string qp = g.Op("Unsqueeze", [DecoderGraph.PositionIds, g.Int64Vector(2)]);                // [batch, seq, 1]
        string kp = g.Op("Unsqueeze", [keyPos, g.Int64Vector(1)]);                                   // [batch, 1, keys]
        string real = g.Op("Equal", [g.Op("Unsqueeze", [realKeys, g.Int64Vector(1)]), one]);
        string visible = g.Op("And", [g.Op("LessOrEqual", [kp, qp]), real]);
        if (layer.Attention == AttentionKind.Sliding)
        {
            // the last `window` positions, the query's own included: q - k < window
            string inWindow = g.Op("Less", [g.Op("Sub", [qp, kp]), g.Int64Scalar(layer.Window)]);
            visible = g.Op("And", [visible, inWindow]);
        }
        else if (layer.Attention == AttentionKind.Chunked)
        {
            // same chunk: floor(q / chunk) == floor(k / chunk) (positions of visible keys are never negative)
            string chunk = g.Int64Scalar(layer.Window);
            visible = g.Op("And", [visible, g.Op("Equal", [g.Op("Div", [qp, chunk]), g.Op("Div", [kp, chunk])])]);
        }
        string bias = g.Op("Where", [visible, g.FloatScalar(0f), g.FloatScalar(MaskedScore)]);
        return _masks[key] = g.Op("Unsqueeze", [bias, g.Int64Vector(1)]);
    }
}
