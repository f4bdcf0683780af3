using Behemoth.Exporter.Onnx;
using Behemoth.Package;
using Behemoth.Formats.Config;

namespace Behemoth.Exporter.Export;

/// <summary>
/// Writes the decoder of any <see cref="DecoderConfig"/> as one ONNX graph with a KV cache, following
/// onnxruntime-genai's I/O names. The math is the Hugging Face modeling code's, block by block (the same order as
/// the reference engine, so the two can be read side by side):
/// <list type="bullet">
/// <item>attention: q/k/v projections → OLMoE projection norm → clip_qkv → Qwen3 per-head norm → RoPE → Llama 4 L2 norm →
/// Llama 4 temperature tuning → causal softmax attention (full, sliding window or chunked; masks from positions, so
/// chunk boundaries are exact in prefill and in decode) over past + present keys.</item>
/// <item>MoE: router → ONNX Runtime's MoE kernel (<see cref="MoeForm.Fused"/>) or TopK/Gather/MatMul/ScatterND
/// (<see cref="MoeForm.Decomposed"/>) → shared expert (with Qwen2-MoE's sigmoid gate).</item>
/// </list>
/// Hidden states are kept as [tokens, hidden] between blocks so that every linear layer is one Gemm on the
/// checkpoint's own [out, in] weight.
/// </summary>
internal sealed class DecoderGraph
{
    public const string InputIds = "input_ids";
    public const string AttentionMask = "attention_mask";
    public const string PositionIds = "position_ids";
    public const string Logits = "logits";
    public static string PastKey(int layer) => $"past_key_values.{layer}.key";
    public static string PastValue(int layer) => $"past_key_values.{layer}.value";
    public static string PresentKey(int layer) => $"present.{layer}.key";
    public static string PresentValue(int layer) => $"present.{layer}.value";
    private static string PastLength(int layer) => $"past_sequence_length_{layer}";
    private static string PresentLength(int layer) => $"present_sequence_length_{layer}";

    private const float MaskedScore = -1e30f;     // not -inf: a fully masked (padding) row stays finite
    private readonly GraphBuilder _g;
    private readonly DecoderConfig _c;
    private readonly WeightSource _w;
    private readonly ExportOptions _o;
    private readonly ExpertPlan _plan;
    private readonly string _profile;
    private readonly Dictionary<(AttentionKind, int), string> _masks = new();
    private string _batchSeq = "";      // Shape(input_ids): [batch, seq]
    private string _cos = "", _sin = ""; // RoPE tables gathered at position_ids, [batch, seq, 1, d/2]
    private string _cosTable = "", _sinTable = "";   // the tables themselves, [positions, d/2] (GroupQueryAttention's caches)
    private string _seqlensK = "", _totalLength = ""; // GroupQueryAttention's view of attention_mask
    private string _tempScale = "";     // Llama 4 temperature tuning factor per position, [batch, seq, 1, 1]

    private DecoderGraph(GraphBuilder g, DecoderConfig c, WeightSource w, ExportOptions o, ExpertPlan plan, string profile) =>
        (_g, _c, _w, _o, _plan, _profile) = (g, c, w, o, plan, profile);

    /// <summary>Writes <paramref name="profile"/>'s graph into <paramref name="g"/> (its routed experts: <paramref name="plan"/>).</summary>
    public static void Build(GraphBuilder g, DecoderConfig c, WeightSource w, ExportOptions o, ExpertPlan plan, string profile, IProgress<int>? layerDone = null)
    {
        var graph = new DecoderGraph(g, c, w, o, plan, profile);
        graph.BuildAll(layerDone);
    }

    private void BuildAll(IProgress<int>? layerDone)
    {
        var n = _c.Names;
        int h = _c.HiddenSize, d = _c.HeadDim;
        _g.Input(InputIds, ElementType.Int64, "batch_size", "sequence_length");
        _g.Input(AttentionMask, ElementType.Int64, "batch_size", "total_sequence_length");
        _g.Input(PositionIds, ElementType.Int64, "batch_size", "sequence_length");
        for (int l = 0; l < _c.NumLayers; l++)
        {
            // Per-layer length names: ONNX Runtime plans buffers assuming equal names mean equal sizes, and a layer's
            // cache may be a window, a chunk or a preallocated buffer (see the manifest's kv_cache).
            _g.Input(PastKey(l), ElementType.Float, "batch_size", _c.NumKvHeads, PastLength(l), d);
            _g.Input(PastValue(l), ElementType.Float, "batch_size", _c.NumKvHeads, PastLength(l), d);
        }
        _g.Output(Logits, ElementType.Float, "batch_size", "sequence_length", _c.VocabSize);

        _batchSeq = _g.Op("Shape", [InputIds]);
        PrepareRope();
        if (_c.Layers.Any(l => l.TemperatureTuning)) PrepareTemperature();

        // inputs_embeds = self.embed_tokens(input_ids), kept as [tokens, hidden]
        float[] EmbedWeights() => _w.Read(n.Embed, _c.VocabSize, h);
        string embed, rows;
        if (_o.Quant == QuantKind.Fp32)
            rows = _g.Op("Gather", [embed = _w.Add(n.Embed, [_c.VocabSize, h], EmbedWeights), InputIds]);
        else
        {
            // Quantized packages store the table as fp16 and gather fp16 rows, widening only those: a Cast of the whole
            // table would be folded into a float32 copy at load, twice the table's bytes in memory.
            string table = _w.HalfTable(n.Embed, [_c.VocabSize, h], EmbedWeights);
            rows = _g.Op("Cast", [_g.Op("Gather", [table, InputIds])], Attr(("to", (int)ElementType.Float)));
            embed = _c.TieWordEmbeddings && _o.Quant == QuantKind.Fp16 && !_o.SimulateQuantization
                ? _g.Op("Cast", [table], Attr(("to", (int)ElementType.Float)))    // the fp16 output projection reads the same table
                : "";
        }
        string x = _g.Op("Reshape", [rows, _g.Int64Vector(-1, h)]);

        foreach (var layer in _c.Layers)
        {
            x = DecoderLayer(layer, x);
            layerDone?.Report(layer.Index);
        }

        // logits = self.lm_head(self.norm(hidden_states))
        string normed = RmsNorm(x, _w.Float(n.FinalNorm, h));
        string logits;
        if (_c.TieWordEmbeddings && _o.Quant is QuantKind.Fp32 or QuantKind.Fp16 && !_o.SimulateQuantization)
            logits = Gemm(normed, embed, null);                        // the same table, no second copy
        else
            logits = _c.TieWordEmbeddings
                ? _w.Linear(normed, "lm_head.weight", EmbedWeights, _c.VocabSize, h)
                : _w.Linear(normed, n.LmHead, _c.VocabSize, h);
        _g.Op("Reshape", [logits, _g.Op("Concat", [_batchSeq, _g.Int64Vector(_c.VocabSize)], Attr(("axis", 0)))], output: Logits);
    }

    private string DecoderLayer(LayerSpec layer, string x)
    {
        var n = _c.Names;
        int h = _c.HiddenSize;
        string L(string template) => TensorNames.Format(template, layer.Index);

        string attn = SelfAttention(layer, RmsNorm(x, _w.Float(L(n.InputNorm), h)));
        x = _g.Op("Add", [x, attn]);
        string normed = RmsNorm(x, _w.Float(L(n.PostAttentionNorm), h));
        string ff = layer.FeedForward == FeedForwardKind.Moe
            ? MoeBlock(layer.Index, normed)
            : SwiGlu(L(n.DenseGate!), L(n.DenseUp!), L(n.DenseDown!), normed, layer.DenseIntermediate);
        return _g.Op("Add", [x, ff]);
    }

    // ---------------------------------------------------------------------------------------------------- attention

    private string SelfAttention(LayerSpec layer, string x)
    {
        var n = _c.Names;
        int h = _c.HiddenSize, d = _c.HeadDim, heads = _c.NumHeads, kvHeads = _c.NumKvHeads;
        int qDim = heads * d, kvDim = kvHeads * d;
        string L(string template) => TensorNames.Format(template, layer.Index);
        string? Bias(string template, int size) => _c.QkvBias ? _w.Float(L(template), size) : null;

        string q = AddBias(_w.Linear(x, L(n.Q), qDim, h), Bias(n.QBias, qDim));
        string k = AddBias(_w.Linear(x, L(n.K), kvDim, h), Bias(n.KBias, kvDim));
        string v = AddBias(_w.Linear(x, L(n.V), kvDim, h), Bias(n.VBias, kvDim));

        // OLMoE: q_norm / k_norm over the whole projections, then clip_qkv.
        if (layer.QkNorm == QkNormKind.ProjectionRms)
        {
            q = RmsNorm(q, _w.Float(L(n.QNorm), qDim));
            k = RmsNorm(k, _w.Float(L(n.KNorm), kvDim));
        }
        if (_c.ClipQkv is double clip)
        {
            string lo = _g.FloatScalar((float)-clip), hi = _g.FloatScalar((float)clip);
            q = _g.Op("Clip", [q, lo, hi]);
            k = _g.Op("Clip", [k, lo, hi]);
            v = _g.Op("Clip", [v, lo, hi]);
        }

        q = ToHeads(q, heads);   // [batch, seq, heads, d]
        k = ToHeads(k, kvHeads);
        v = ToHeads(v, kvHeads);
        // Qwen3-MoE: RMSNorm per head, before RoPE.
        if (layer.QkNorm == QkNormKind.PerHeadRms)
        {
            q = RmsNorm(q, _w.Float(L(n.QNorm), d));
            k = RmsNorm(k, _w.Float(L(n.KNorm), d));
        }
        bool gqa = UsesGroupQueryAttention(layer);
        // GroupQueryAttention rotates q and k itself, unless a norm must come after RoPE (Llama 4).
        bool kernelRope = gqa && layer.UseRope && layer.QkNorm != QkNormKind.L2;
        if (layer.UseRope && !kernelRope)
        {
            q = Rope(q);
            k = Rope(k);
        }
        // Llama 4: weightless RMS ("L2") norm per head after RoPE.
        if (layer.QkNorm == QkNormKind.L2)
        {
            string ones = _g.Floats([d], Enumerable.Repeat(1f, d).ToArray());
            q = RmsNorm(q, ones);
            k = RmsNorm(k, ones);
        }
        // Llama 4 NoPE layers: q *= log(floor((pos + 1) / floor_scale) + 1) * attn_scale + 1.
        if (layer.TemperatureTuning)
            q = _g.Op("Mul", [q, _tempScale]);

        if (gqa)
            return AddBias(_w.Linear(GroupQueryAttention(layer, q, k, v, kernelRope), L(n.O), h, qDim), _c.OutputBias ? _w.Float(L(n.OBias), h) : null);

        // [batch, heads, seq, d]; the cache holds keys after RoPE and norm, as Hugging Face's does.
        int[] toBhsd = [0, 2, 1, 3];
        q = _g.Op("Transpose", [q], Attr(("perm", toBhsd)));
        string presentK = _g.Op("Concat", [DecoderGraph.PastKey(layer.Index), _g.Op("Transpose", [k], Attr(("perm", toBhsd)))],
            Attr(("axis", 2)), output: PresentKey(layer.Index));
        string presentV = _g.Op("Concat", [DecoderGraph.PastValue(layer.Index), _g.Op("Transpose", [v], Attr(("perm", toBhsd)))],
            Attr(("axis", 2)), output: PresentValue(layer.Index));
        _g.Output(presentK, ElementType.Float, "batch_size", kvHeads, PresentLength(layer.Index), d);
        _g.Output(presentV, ElementType.Float, "batch_size", kvHeads, PresentLength(layer.Index), d);

        string keys = RepeatKv(presentK), values = RepeatKv(presentV);
        string scores = _g.Op("MatMul", [q, _g.Op("Transpose", [keys], Attr(("perm", new[] { 0, 1, 3, 2 })))]);
        scores = _g.Op("Mul", [scores, _g.FloatScalar((float)(1.0 / Math.Sqrt(d)))]);
        scores = _g.Op("Add", [scores, Mask(layer, presentK)]);
        string probs = _g.Op("Softmax", [scores], Attr(("axis", -1)));
        string context = _g.Op("MatMul", [probs, values]);                                   // [batch, heads, seq, d]
        context = _g.Op("Transpose", [context], Attr(("perm", toBhsd)));
        context = _g.Op("Reshape", [context, _g.Int64Vector(-1, qDim)]);
        return AddBias(_w.Linear(context, L(n.O), h, qDim), _c.OutputBias ? _w.Float(L(n.OBias), h) : null);
    }

    /// <summary>
    /// ONNX Runtime's fused causal attention with KV cache, for full-attention layers of the fused form. Not for chunked
    /// layers (it has no chunked mode), not yet for sliding windows (its local_window_size is not covered by a golden
    /// set with a head size it accepts), not for head sizes its CPU kernel refuses (a multiple of 8, of 16 with
    /// rotary); those layers, and the whole decomposed form, use standard ops.
    /// </summary>
    public static bool UsesGroupQueryAttention(DecoderConfig c, ExportOptions o, LayerSpec layer) =>
        o.Moe == MoeForm.Fused && layer.Attention == AttentionKind.Full && c.HeadDim % (layer.UseRope ? 16 : 8) == 0;

    private bool UsesGroupQueryAttention(LayerSpec layer) => UsesGroupQueryAttention(_c, _o, layer);

    /// <summary>What each layer's KV cache must keep, for the manifest (the runtime sizes and trims its cache by it).</summary>
    public static IReadOnlyList<LayerKvCache> KvCacheLayout(DecoderConfig c, ExportOptions o) =>
        c.Layers.Select(l => new LayerKvCache(l.Index, l.Attention.ToString().ToLowerInvariant(),
            l.Attention == AttentionKind.Full ? null : l.Window, UsesGroupQueryAttention(c, o, l))).ToArray();

    /// <summary>q [batch, seq, heads, d], k/v [batch, seq, kv_heads, d] → attention output [tokens, heads·d].</summary>
    private string GroupQueryAttention(LayerSpec layer, string q, string k, string v, bool rotary)
    {
        if (_seqlensK.Length == 0)
        {
            // seqlens_k: per sequence, the index of its last real token; total_sequence_length: the mask's width
            var int32 = Attr(("to", (int)ElementType.Int32));
            string lengths = _g.Op("ReduceSum", [AttentionMask, _g.Int64Vector(1)], Attr(("keepdims", 0)));
            _seqlensK = _g.Op("Cast", [_g.Op("Sub", [lengths, _g.Int64Scalar(1)])], int32);
            string width = _g.Op("Gather", [_g.Op("Shape", [AttentionMask]), _g.Int64Scalar(1)], Attr(("axis", 0)));
            _totalLength = _g.Op("Cast", [width], int32);
        }
        string Flat(string x) => _g.Op("Reshape", [x, _g.Int64Vector(0, 0, -1)]);   // [batch, seq, heads·d]
        var inputs = new List<string> { Flat(q), Flat(k), Flat(v), PastKey(layer.Index), PastValue(layer.Index), _seqlensK, _totalLength };
        if (rotary) inputs.AddRange([_cosTable, _sinTable]);
        var attributes = Attr(("num_heads", _c.NumHeads), ("kv_num_heads", _c.NumKvHeads), ("scale", (float)(1.0 / Math.Sqrt(_c.HeadDim))),
            ("do_rotary", rotary ? 1 : 0), ("rotary_interleaved", _c.RopeLayout == RopeLayout.Interleaved ? 1 : 0));
        var outputs = _g.OpMulti("GroupQueryAttention", [.. inputs], 3, attributes,
            [_g.Name("gqa"), PresentKey(layer.Index), PresentValue(layer.Index)], GraphBuilder.MicrosoftDomain);
        _g.Output(outputs[1], ElementType.Float, "batch_size", _c.NumKvHeads, PresentLength(layer.Index), _c.HeadDim);
        _g.Output(outputs[2], ElementType.Float, "batch_size", _c.NumKvHeads, PresentLength(layer.Index), _c.HeadDim);
        return _g.Op("Reshape", [outputs[0], _g.Int64Vector(-1, _c.NumHeads * _c.HeadDim)]);
    }

    /// <summary>[tokens, heads·d] → [batch, seq, heads, d].</summary>
    private string ToHeads(string x, int heads) =>
        _g.Op("Reshape", [x, _g.Op("Concat", [_batchSeq, _g.Int64Vector(heads, _c.HeadDim)], Attr(("axis", 0)))]);

    /// <summary>[batch, kv_heads, total, d] → [batch, heads, total, d], each key/value head shared by heads/kv_heads query heads.</summary>
    private string RepeatKv(string x)
    {
        int group = _c.NumHeads / _c.NumKvHeads;
        if (group == 1) return x;
        string expanded = _g.Op("Expand", [_g.Op("Unsqueeze", [x, _g.Int64Vector(2)]), _g.Int64Vector(1, 1, group, 1, 1)]);
        return _g.Op("Reshape", [expanded, _g.Int64Vector(0, _c.NumHeads, -1, _c.HeadDim)]);
    }

    /// <summary>
    /// The additive mask [batch, 1, seq, keys] for one layer, built from positions: a key is visible when it is a real
    /// token (attention_mask), not in the future, and inside the window or chunk. Key positions are
    /// cumsum(attention_mask) - 1, as onnxruntime-genai numbers them. The layer's keys are the last ones of the
    /// sequence: all of them for full attention; for sliding and chunked layers the runtime may keep only the keys a
    /// later query can still see (at most one window or chunk), so the mask takes the last `keys` positions, where
    /// keys is the length of the layer's present keys. Full-attention layers share one mask.
    /// </summary>
    private string Mask(LayerSpec layer, string presentKeys)
    {
        var key = (layer.Attention, layer.Attention == AttentionKind.Full ? -1 : layer.Index);
        if (_masks.TryGetValue(key, out var cached)) return cached;
        string one = _g.Int64Scalar(1);
        string keyPos = _g.Op("Sub", [_g.Op("CumSum", [AttentionMask, _g.Int64Scalar(1)]), one]);   // [batch, total]
        string realKeys = AttentionMask;
        if (layer.Attention != AttentionKind.Full)
        {
            // the last `keys` columns: Slice(starts = -keys, ends = max) along the sequence axis
            string keys = _g.Op("Gather", [_g.Op("Shape", [presentKeys]), _g.Int64Vector(2)], Attr(("axis", 0)));
            string starts = _g.Op("Neg", [keys]);
            string ends = _g.Int64Vector(long.MaxValue), axes = _g.Int64Vector(1);
            keyPos = _g.Op("Slice", [keyPos, starts, ends, axes]);
            realKeys = _g.Op("Slice", [AttentionMask, starts, ends, axes]);
        }
        string qp = _g.Op("Unsqueeze", [PositionIds, _g.Int64Vector(2)]);                            // [batch, seq, 1]
        string kp = _g.Op("Unsqueeze", [keyPos, _g.Int64Vector(1)]);                                 // [batch, 1, keys]
        string real = _g.Op("Equal", [_g.Op("Unsqueeze", [realKeys, _g.Int64Vector(1)]), one]);
        string visible = _g.Op("And", [_g.Op("LessOrEqual", [kp, qp]), real]);
        if (layer.Attention == AttentionKind.Sliding)
        {
            // the last `window` positions, the query's own included: q - k < window
            string inWindow = _g.Op("Less", [_g.Op("Sub", [qp, kp]), _g.Int64Scalar(layer.Window)]);
            visible = _g.Op("And", [visible, inWindow]);
        }
        else if (layer.Attention == AttentionKind.Chunked)
        {
            // same chunk: floor(q / chunk) == floor(k / chunk) (positions of visible keys are never negative)
            string chunk = _g.Int64Scalar(layer.Window);
            visible = _g.Op("And", [visible, _g.Op("Equal", [_g.Op("Div", [qp, chunk]), _g.Op("Div", [kp, chunk])])]);
        }
        string bias = _g.Op("Where", [visible, _g.FloatScalar(0f), _g.FloatScalar(MaskedScore)]);
        return _masks[key] = _g.Op("Unsqueeze", [bias, _g.Int64Vector(1)]);
    }

    private void PrepareRope()
    {
        if (!_c.Layers.Any(l => l.UseRope)) return;
        int half = _c.HeadDim / 2;
        int positions = Math.Min(_c.MaxPositionEmbeddings, _o.MaxContext);
        float[] Table(Func<double, double> f)
        {
            double[] inv = _c.Rope.InverseFrequencies(_c.HeadDim);
            var table = new float[positions * half];
            for (int p = 0; p < positions; p++)
                for (int i = 0; i < half; i++)
                    table[p * half + i] = (float)f(p * inv[i]);
            return table;
        }
        string cosTable = _w.Add("rope.cos", [positions, half], () => Table(Math.Cos));
        string sinTable = _w.Add("rope.sin", [positions, half], () => Table(Math.Sin));
        (_cosTable, _sinTable) = (cosTable, sinTable);
        _cos = _g.Op("Unsqueeze", [_g.Op("Gather", [cosTable, PositionIds]), _g.Int64Vector(2)]);   // [batch, seq, 1, d/2]
        _sin = _g.Op("Unsqueeze", [_g.Op("Gather", [sinTable, PositionIds]), _g.Int64Vector(2)]);
    }

    /// <summary>Rotates [batch, seq, heads, d]: HF rotate_half pairs (i, i + d/2); Llama 4 pairs (2i, 2i + 1).</summary>
    private string Rope(string x)
    {
        int half = _c.HeadDim / 2;
        if (_c.RopeLayout == RopeLayout.HalfSplit)
        {
            var parts = _g.OpMulti("Split", [x, _g.Int64Vector(half, half)], 2, Attr(("axis", -1)));
            string a = parts[0], b = parts[1];
            string first = _g.Op("Sub", [_g.Op("Mul", [a, _cos]), _g.Op("Mul", [b, _sin])]);
            string second = _g.Op("Add", [_g.Op("Mul", [b, _cos]), _g.Op("Mul", [a, _sin])]);
            return _g.Op("Concat", [first, second], Attr(("axis", -1)));
        }
        // interleaved: view as [..., d/2, 2] and rotate each (even, odd) pair
        string pairs = _g.Op("Reshape", [x, _g.Int64Vector(0, 0, 0, half, 2)]);
        var split = _g.OpMulti("Split", [pairs, _g.Int64Vector(1, 1)], 2, Attr(("axis", -1)));
        string re = split[0], im = split[1];
        string cos = _g.Op("Unsqueeze", [_cos, _g.Int64Vector(-1)]), sin = _g.Op("Unsqueeze", [_sin, _g.Int64Vector(-1)]);
        string outRe = _g.Op("Sub", [_g.Op("Mul", [re, cos]), _g.Op("Mul", [im, sin])]);
        string outIm = _g.Op("Add", [_g.Op("Mul", [re, sin]), _g.Op("Mul", [im, cos])]);
        return _g.Op("Reshape", [_g.Op("Concat", [outRe, outIm], Attr(("axis", -1))), _g.Int64Vector(0, 0, 0, _c.HeadDim)]);
    }

    private void PrepareTemperature()
    {
        string pos = _g.Op("Cast", [PositionIds], Attr(("to", (int)ElementType.Float)));
        string floor = _g.Op("Floor", [_g.Op("Div", [_g.Op("Add", [pos, _g.FloatScalar(1f)]), _g.FloatScalar((float)_c.FloorScale)])]);
        string scale = _g.Op("Add", [_g.Op("Mul", [_g.Op("Log", [_g.Op("Add", [floor, _g.FloatScalar(1f)])]), _g.FloatScalar((float)_c.AttnScale)]), _g.FloatScalar(1f)]);
        _tempScale = _g.Op("Unsqueeze", [scale, _g.Int64Vector(2, 3)]);   // [batch, seq, 1, 1]
    }

    // -------------------------------------------------------------------------------------------------- feed-forward

    private string MoeBlock(int layer, string x)
    {
        var m = _c.Moe;
        var n = _c.Names;
        int h = _c.HiddenSize;
        string L(string template) => TensorNames.Format(template, layer);

        // The router's rows for the experts this profile keeps, in graph order: a pruned layer routes among those only.
        int[] kept = _plan.Kept(_profile, layer);
        var own = _plan.Profile(_profile).Weights;
        string router;
        if (own?.Routers.TryGetValue(layer, out var refitted) == true)
        {
            // refitted rows are given in ascending id order; the graph's order is kept's
            var ascending = kept.Order().ToArray();
            router = _w.Add($"{L(n.Router)}.{_profile}", [kept.Length, h],
                () => kept.SelectMany(e => refitted.AsSpan(Array.IndexOf(ascending, e) * h, h).ToArray()).ToArray());
        }
        else if (kept.SequenceEqual(Enumerable.Range(0, m.NumExperts)))
            router = _w.Float(L(n.Router), m.NumExperts, h);
        else
            router = _w.Add($"{L(n.Router)}.experts.{ExpertPlan.Key(kept)}", [kept.Length, h], () =>
            {
                float[] all = _w.Read(L(n.Router), m.NumExperts, h);
                return kept.SelectMany(e => all.AsSpan(e * h, h).ToArray()).ToArray();
            });
        string logits = Gemm(x, router, null);                                            // [tokens, kept experts]
        // a distilled expert is this profile's own tensor; the others are the checkpoint's, shared
        ExpertMatrices? Replaced(int e) => own?.Experts.GetValueOrDefault((layer, e));
        string routed;
        if (!UsesFusedMoe(_c, _o))
            routed = DecomposedMoe.Write(_g, _w, _c, layer, x, logits, kept, Replaced, _profile);
        else if (_plan.OwnStack(_profile, layer))
            routed = FusedMoe.Write(_g, _w, _c, layer, x, logits, kept, 0, kept.Length, Replaced, $"model.layers.{layer}.moe.{_profile}");
        else
            routed = FusedMoe.Write(_g, _w, _c, layer, x, logits, _plan.StorageOrder(layer), _plan.Start(_profile, layer), kept.Length, null, $"model.layers.{layer}.moe");

        if (m.SharedIntermediate <= 0 || n.SharedGate is null) return routed;
        string shared = SwiGlu(L(n.SharedGate), L(n.SharedUp!), L(n.SharedDown!), x, m.SharedIntermediate);
        if (m.SharedExpertSigmoidGate)
        {
            // shared_expert_output = sigmoid(shared_expert_gate(x)) * shared_expert(x)
            string gate = _g.Op("Sigmoid", [Gemm(x, _w.Float(L(n.SharedExpertGate!), 1, h), null)]);
            shared = _g.Op("Mul", [shared, gate]);
        }
        return _g.Op("Add", [routed, shared]);
    }

    /// <summary>
    /// Whether the routed experts go through ONNX Runtime's MoE / QMoE kernel. Not for sigmoid routing with k &gt; 1
    /// (each expert sees its own scaled input), and not for int8: QMoE's 8-bit path disagrees with its own
    /// dequantized weights on ONNX Runtime 1.31 (up to 0.8 on the golden logits), so int8 experts run as MatMulNBits.
    /// </summary>
    public static bool UsesFusedMoe(DecoderConfig c, ExportOptions o) =>
        o.Moe == MoeForm.Fused && !(c.Moe.Router == RouterKind.TopKSigmoid && c.Moe.TopK > 1) && o.Quant != QuantKind.Int8;

    /// <summary>down(silu(gate(x)) * up(x)) with nn.Linear weights.</summary>
    private string SwiGlu(string gateName, string upName, string downName, string x, int intermediate)
    {
        int h = _c.HiddenSize;
        string gate = _w.Linear(x, gateName, intermediate, h);
        string up = _w.Linear(x, upName, intermediate, h);
        string act = _g.Op("Mul", [_g.Op("Mul", [gate, _g.Op("Sigmoid", [gate])]), up]);
        return _w.Linear(act, downName, h, intermediate);
    }

    // -------------------------------------------------------------------------------------------------- primitives

    /// <summary>x [tokens, in] · Wᵀ (+ b), W in nn.Linear's [out, in] layout.</summary>
    private string Gemm(string x, string weight, string? bias) =>
        _g.Op("Gemm", bias is null ? [x, weight] : [x, weight, bias], Attr(("transB", 1)));

    private string AddBias(string x, string? bias) => bias is null ? x : _g.Op("Add", [x, bias]);

    private string RmsNorm(string x, string weight) =>
        _g.Op("SimplifiedLayerNormalization", [x, weight], Attr(("axis", -1), ("epsilon", (float)_c.RmsNormEps), ("stash_type", 1)));

    internal static Dictionary<string, object> Attr(params (string Key, object Value)[] items) => items.ToDictionary(i => i.Key, i => i.Value);
}
