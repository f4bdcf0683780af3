using Behemoth.Exporter.Onnx;
using Behemoth.Formats.Config;
using Behemoth.Package;
using static Behemoth.Exporter.Export.Blocks.Ops;

namespace Behemoth.Exporter.Export.Blocks;

/// <summary>
/// Causal self-attention over past + present keys, in the steps an architecture composes (see Export/Models):
/// <see cref="Project"/> (q/k/v projections), <see cref="Clip"/>, <see cref="ToHeads"/>, then <see cref="Attend"/>
/// (RoPE, attention, o_proj). Attention is ONNX Runtime's GroupQueryAttention where it applies
/// (<see cref="UsesGroupQueryAttention"/>), otherwise explicit ops with a mask from <see cref="Masks"/>. Hidden
/// states are [tokens, hidden]; heads are [batch, seq, heads, d].
/// </summary>
internal sealed class AttentionBlock(GraphContext x)
{
    private string _seqlensK = "", _totalLength = "";   // GroupQueryAttention's view of attention_mask

    private GraphBuilder G => x.G;
    private DecoderConfig C => x.C;

    /// <summary>
    /// ONNX Runtime's fused causal attention with KV cache, for full-attention layers of the fused form. Not for chunked
    /// layers (it has no chunked mode), not yet for sliding windows (its local_window_size is not covered by a golden
    /// set with a head size it accepts), not for head sizes its CPU kernel refuses (a multiple of 8, of 16 with
    /// rotary); those layers, and the whole decomposed form, use standard ops.
    /// </summary>
    public static bool UsesGroupQueryAttention(DecoderConfig c, ExportOptions o, LayerSpec layer) =>
        o.Moe == MoeForm.Fused && layer.Attention == AttentionKind.Full && c.HeadDim % (layer.UseRope ? 16 : 8) == 0;

    /// <summary>What each layer's KV cache must keep, for the manifest (the runtime sizes and trims its cache by it).</summary>
    public static IReadOnlyList<LayerKvCache> KvCacheLayout(DecoderConfig c, ExportOptions o) =>
        c.Layers.Select(l => new LayerKvCache(l.Index, l.Attention,
            l.Attention == AttentionKind.Full ? null : l.Window, UsesGroupQueryAttention(c, o, l))).ToArray();

    /// <summary>q, k, v = q_proj(x), k_proj(x), v_proj(x) [tokens, ·], with their biases where the config has them.</summary>
    public (string Q, string K, string V) Project(LayerSpec layer, string hidden)
    {
        var n = C.Names;
        int h = C.HiddenSize, qDim = C.NumHeads * C.HeadDim, kvDim = C.NumKvHeads * C.HeadDim;
        string Proj(string scope, string weight, string bias, int size)
        {
            using (G.Scope(scope))
                return AddBias(G, x.W.Linear(hidden, GraphContext.L(weight, layer.Index), size, h),
                    C.QkvBias ? x.W.Float(GraphContext.L(bias, layer.Index), size) : null);
        }
        return (Proj("q_proj", n.Q, n.QBias, qDim), Proj("k_proj", n.K, n.KBias, kvDim), Proj("v_proj", n.V, n.VBias, kvDim));
    }

    /// <summary>q, k, v clamped to ±<paramref name="clip"/> (OLMoE's clip_qkv).</summary>
    public (string Q, string K, string V) Clip(string q, string k, string v, double clip)
    {
        using var scope = G.Scope("clip_qkv");
        string lo = G.FloatScalar((float)-clip), hi = G.FloatScalar((float)clip);
        return (G.Op("Clip", [q, lo, hi]), G.Op("Clip", [k, lo, hi]), G.Op("Clip", [v, lo, hi]));
    }

    /// <summary>[tokens, heads·d] → [batch, seq, heads, d] for q, k and v.</summary>
    public (string Q, string K, string V) ToHeads(string q, string k, string v)
    {
        using var scope = G.Scope("heads");
        return (Heads(q, C.NumHeads), Heads(k, C.NumKvHeads), Heads(v, C.NumKvHeads));
    }

    private string Heads(string t, int heads) =>
        G.Op("Reshape", [t, G.Op("Concat", [x.BatchSeq, G.Int64Vector(heads, C.HeadDim)], Attr(("axis", 0)))]);

    /// <summary>RoPE on q and k as its own step, for architectures that change q or k after it (Llama 4's QK norm).</summary>
    public (string Q, string K) Rotate(string q, string k) => x.Rope!.Rotate(q, k);

    /// <summary>
    /// o_proj(softmax(q·kᵀ/√d + mask)·v) → [tokens, hidden], writing the layer's present keys and values; with
    /// <paramref name="rotate"/>, q and k are rotated first (by GroupQueryAttention itself where it runs).
    /// </summary>
    public string Attend(LayerSpec layer, string q, string k, string v, bool rotate)
    {
        int qDim = C.NumHeads * C.HeadDim;
        string context;
        if (UsesGroupQueryAttention(C, x.O, layer))
            context = GroupQueryAttention(layer, q, k, v, rotate);
        else
        {
            if (rotate) (q, k) = Rotate(q, k);
            context = ExplicitAttention(layer, q, k, v);
        }
        using (G.Scope("o_proj"))
            return AddBias(G, x.W.Linear(context, GraphContext.L(C.Names.O, layer.Index), C.HiddenSize, qDim),
                C.OutputBias ? x.W.Float(GraphContext.L(C.Names.OBias, layer.Index), C.HiddenSize) : null);
    }

    /// <summary>Standard ops; the cache holds keys after RoPE and norm, as Hugging Face's does.</summary>
    private string ExplicitAttention(LayerSpec layer, string q, string k, string v)
    {
        int d = C.HeadDim, kvHeads = C.NumKvHeads;
        using var scope = G.Scope("sdpa");
        int[] toBhsd = [0, 2, 1, 3];                                                         // [batch, heads, seq, d]
        q = G.Op("Transpose", [q], Attr(("perm", toBhsd)));
        string presentK = G.Op("Concat", [DecoderGraph.PastKey(layer.Index), G.Op("Transpose", [k], Attr(("perm", toBhsd)))],
            Attr(("axis", 2)), output: DecoderGraph.PresentKey(layer.Index));
        string presentV = G.Op("Concat", [DecoderGraph.PastValue(layer.Index), G.Op("Transpose", [v], Attr(("perm", toBhsd)))],
            Attr(("axis", 2)), output: DecoderGraph.PresentValue(layer.Index));
        G.Output(presentK, ElementType.Float, "batch_size", kvHeads, DecoderGraph.PresentLength(layer.Index), d);
        G.Output(presentV, ElementType.Float, "batch_size", kvHeads, DecoderGraph.PresentLength(layer.Index), d);

        string keys = RepeatKv(presentK), values = RepeatKv(presentV);
        string scores = G.Op("MatMul", [q, G.Op("Transpose", [keys], Attr(("perm", new[] { 0, 1, 3, 2 })))]);
        scores = G.Op("Mul", [scores, G.FloatScalar((float)(1.0 / Math.Sqrt(d)))]);
        scores = G.Op("Add", [scores, x.Masks.For(x, layer, presentK)]);
        string probs = G.Op("Softmax", [scores], Attr(("axis", -1)));
        string context = G.Op("MatMul", [probs, values]);                                   // [batch, heads, seq, d]
        context = G.Op("Transpose", [context], Attr(("perm", toBhsd)));
        return G.Op("Reshape", [context, G.Int64Vector(-1, C.NumHeads * d)]);
    }

    /// <summary>[batch, kv_heads, total, d] → [batch, heads, total, d], each key/value head shared by heads/kv_heads query heads.</summary>
    private string RepeatKv(string t)
    {
        int group = C.NumHeads / C.NumKvHeads;
        if (group == 1) return t;
        string expanded = G.Op("Expand", [G.Op("Unsqueeze", [t, G.Int64Vector(2)]), G.Int64Vector(1, 1, group, 1, 1)]);
        return G.Op("Reshape", [expanded, G.Int64Vector(0, C.NumHeads, -1, C.HeadDim)]);
    }

    /// <summary>q [batch, seq, heads, d], k/v [batch, seq, kv_heads, d] → attention output [tokens, heads·d].</summary>
    private string GroupQueryAttention(LayerSpec layer, string q, string k, string v, bool rotary)
    {
        if (_seqlensK.Length == 0)
        {
            // seqlens_k: per sequence, the index of its last real token; total_sequence_length: the mask's width
            using var lengths = G.Scope("/model/attn_lengths");
            var int32 = Attr(("to", (int)ElementType.Int32));
            string sum = G.Op("ReduceSum", [DecoderGraph.AttentionMask, G.Int64Vector(1)], Attr(("keepdims", 0)));
            _seqlensK = G.Op("Cast", [G.Op("Sub", [sum, G.Int64Scalar(1)])], int32);
            string width = G.Op("Gather", [G.Op("Shape", [DecoderGraph.AttentionMask]), G.Int64Scalar(1)], Attr(("axis", 0)));
            _totalLength = G.Op("Cast", [width], int32);
        }
        using var scope = G.Scope("gqa");
        string Flat(string t) => G.Op("Reshape", [t, G.Int64Vector(0, 0, -1)]);   // [batch, seq, heads·d]
        var inputs = new List<string> { Flat(q), Flat(k), Flat(v), DecoderGraph.PastKey(layer.Index), DecoderGraph.PastValue(layer.Index), _seqlensK, _totalLength };
        if (rotary) inputs.AddRange([x.Rope!.CosTable, x.Rope.SinTable]);
        var attributes = Attr(("num_heads", C.NumHeads), ("kv_num_heads", C.NumKvHeads), ("scale", (float)(1.0 / Math.Sqrt(C.HeadDim))),
            ("do_rotary", rotary ? 1 : 0), ("rotary_interleaved", C.RopeLayout == RopeLayout.Interleaved ? 1 : 0));
        var outputs = G.OpMulti("GroupQueryAttention", [.. inputs], 3, attributes,
            [null, DecoderGraph.PresentKey(layer.Index), DecoderGraph.PresentValue(layer.Index)], GraphBuilder.MicrosoftDomain);
        G.Output(outputs[1], ElementType.Float, "batch_size", C.NumKvHeads, DecoderGraph.PresentLength(layer.Index), C.HeadDim);
        G.Output(outputs[2], ElementType.Float, "batch_size", C.NumKvHeads, DecoderGraph.PresentLength(layer.Index), C.HeadDim);
        return G.Op("Reshape", [outputs[0], G.Int64Vector(-1, C.NumHeads * C.HeadDim)]);
    }
}
