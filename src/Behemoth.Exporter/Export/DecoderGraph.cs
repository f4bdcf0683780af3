using Behemoth.Package;
using Behemoth.Exporter.Export.Blocks;
using Behemoth.Exporter.Export.Models;
using Behemoth.Exporter.Onnx;
using Behemoth.Formats.Config;
using Behemoth.Formats.Errors;
using static Behemoth.Exporter.Export.Blocks.Ops;

namespace Behemoth.Exporter.Export;

/// <summary>
/// The decoder skeleton every architecture shares, written as one ONNX graph with a KV cache in onnxruntime-genai's
/// I/O names: inputs and cache, embeddings, the layers (pre-norm residual blocks), the final norm and lm_head. What
/// a layer's attention and feed-forward compute is each architecture's own file in Export/Models, composed from the
/// blocks of Export/Blocks, as Hugging Face's modeling_*.py files are (the reference engine follows the same order,
/// so the two read side by side). Hidden states are kept as [tokens, hidden] between blocks so that every linear
/// layer is one Gemm on the checkpoint's own [out, in] weight. Nodes are named by module path
/// (<c>/model/layers.3/attn/q_proj/Gemm</c>).
/// </summary>
internal abstract class DecoderGraph
{
    // the names are the package contract's (Behemoth.Package.GraphNames), shared with the runtime
    public const string InputIds = GraphNames.InputIds;
    public const string AttentionMask = GraphNames.AttentionMask;
    public const string PositionIds = GraphNames.PositionIds;
    public const string Logits = GraphNames.Logits;
    public const string LogitsToKeep = GraphNames.LogitsToKeep;
    public static string PastKey(int layer) => GraphNames.PastKey(layer);
    public static string PastValue(int layer) => GraphNames.PastValue(layer);
    public static string PresentKey(int layer) => GraphNames.PresentKey(layer);
    public static string PresentValue(int layer) => GraphNames.PresentValue(layer);
    public static string PastLength(int layer) => $"past_sequence_length_{layer}";
    public static string PresentLength(int layer) => $"present_sequence_length_{layer}";

    protected DecoderGraph(GraphContext x)
    {
        X = x;
        Attn = new AttentionBlock(x);
    }

    protected GraphContext X { get; }
    protected GraphBuilder G => X.G;
    protected DecoderConfig C => X.C;
    protected AttentionBlock Attn { get; }

    /// <summary>Writes <paramref name="profile"/>'s graph into <paramref name="g"/> (its routed experts: <paramref name="plan"/>).</summary>
    public static void Build(GraphBuilder g, DecoderConfig c, WeightSource w, ExportOptions o, ExpertPlan plan, string profile, IProgress<int>? layerDone = null) =>
        For(new GraphContext(g, c, w, o, plan, profile)).BuildAll(layerDone);

    /// <summary>The builder of the config's architecture.</summary>
    private static DecoderGraph For(GraphContext x) => x.C.Architecture switch
    {
        "MixtralForCausalLM" => new MixtralGraph(x),
        "Qwen2MoeForCausalLM" => new Qwen2MoeGraph(x),
        "Qwen3MoeForCausalLM" => new Qwen3MoeGraph(x),
        "OlmoeForCausalLM" => new OlmoeGraph(x),
        "Llama4ForCausalLM" or "Llama4ForConditionalGeneration" => new Llama4Graph(x),
        var name => throw new BehemothException($"architecture '{name}' has no graph builder (exportable: MixtralForCausalLM, Qwen2MoeForCausalLM, "
            + "Qwen3MoeForCausalLM, OlmoeForCausalLM, Llama4ForCausalLM, Llama4ForConditionalGeneration)"),
    };

    /// <summary>Values an architecture computes once per graph from the inputs, before the embeddings (Llama 4's temperature).</summary>
    protected virtual void Prepare() { }

    /// <summary>self_attn(input_layernorm(x)) on the layer's hidden states [tokens, hidden], under <c>attn</c>.</summary>
    protected abstract string Attention(LayerSpec layer, string x);

    /// <summary>The MLP or MoE block on post_attention_layernorm(x) [tokens, hidden].</summary>
    protected abstract string FeedForward(LayerSpec layer, string x);

    /// <summary>x + attn(norm(x)), then + ff(norm(x)).</summary>
    protected virtual string DecoderLayer(LayerSpec layer, string x)
    {
        var n = C.Names;
        int h = C.HiddenSize;
        string normed = Norms.Rms(X, "input_layernorm", x, GraphContext.L(n.InputNorm, layer.Index), h), attn;
        using (G.Scope("attn")) attn = Attention(layer, normed);
        x = G.Op("Add", [x, attn]);
        string ff = FeedForward(layer, Norms.Rms(X, "post_attention_layernorm", x, GraphContext.L(n.PostAttentionNorm, layer.Index), h));
        return G.Op("Add", [x, ff]);
    }

    private void BuildAll(IProgress<int>? layerDone)
    {
        var n = C.Names;
        int h = C.HiddenSize, d = C.HeadDim;
        G.Input(InputIds, ElementType.Int64, "batch_size", "sequence_length");
        G.Input(AttentionMask, ElementType.Int64, "batch_size", "total_sequence_length");
        G.Input(PositionIds, ElementType.Int64, "batch_size", "sequence_length");
        for (int l = 0; l < C.NumLayers; l++)
        {
            // Per-layer length names: ONNX Runtime plans buffers assuming equal names mean equal sizes, and a layer's
            // cache may be a window, a chunk or a preallocated buffer (see the manifest's kv_cache).
            G.Input(PastKey(l), ElementType.Float, "batch_size", C.NumKvHeads, PastLength(l), d);
            G.Input(PastValue(l), ElementType.Float, "batch_size", C.NumKvHeads, PastLength(l), d);
        }
        G.InputWithDefault(LogitsToKeep, ElementType.Int64, [1], BitConverter.GetBytes(0L));
        G.Output(Logits, ElementType.Float, "batch_size", "logits_length", C.VocabSize);

        using (G.Scope("/model")) X.BatchSeq = G.Op("Shape", [InputIds]);
        if (C.Layers.Any(l => l.UseRope)) X.Rope = Rope.Create(X);
        Prepare();

        // inputs_embeds = self.embed_tokens(input_ids), kept as [tokens, hidden]
        string x, embed;
        using (G.Scope("/model/embed_tokens")) (x, embed) = Embeddings();

        using (G.Scope("/model"))
            foreach (var layer in C.Layers)
            {
                using (G.Scope($"layers.{layer.Index}")) x = DecoderLayer(layer, x);
                layerDone?.Report(layer.Index);
            }

        // logits = self.lm_head(self.norm(hidden_states))
        string normed;
        using (G.Scope("/model")) normed = Norms.Rms(X, "norm", x, n.FinalNorm, h);
        // logits_to_keep: the last N rows of [tokens, hidden] (rows from -N on; -0 is every row)
        using (G.Scope("/model/logits_to_keep"))
            normed = G.Op("Slice", [normed, G.Op("Neg", [LogitsToKeep]), G.Int64Vector(long.MaxValue), G.Int64Vector(0)]);
        using var head = G.Scope("/lm_head");
        var w = X.W;
        float[] EmbedWeights() => w.Read(n.Embed, C.VocabSize, h);
        string logits;
        if (C.TieWordEmbeddings && w.Storage.TiedHeadReadsEmbeddings)
            logits = Gemm(G, normed, embed);                        // the same table, no second copy
        else
            logits = C.TieWordEmbeddings
                ? w.Linear(normed, "lm_head.weight", EmbedWeights, C.VocabSize, h)
                : w.Linear(normed, n.LmHead, C.VocabSize, h);
        string batch = G.Op("Slice", [X.BatchSeq, G.Int64Vector(0), G.Int64Vector(1)]);
        G.Op("Reshape", [logits, G.Op("Concat", [batch, G.Int64Vector(-1, C.VocabSize)], Attr(("axis", 0)))], output: Logits);
    }

    /// <summary>The embedded rows [tokens, hidden], and the table as float32 where a tied fp32/fp16 lm_head reads it ("" otherwise).</summary>
    private (string Rows, string Table) Embeddings()
    {
        var (n, w) = (C.Names, X.W);
        int h = C.HiddenSize;
        float[] EmbedWeights() => w.Read(n.Embed, C.VocabSize, h);
        string embed, rows;
        if (!w.Storage.HalfEmbeddings)
            rows = G.Op("Gather", [embed = w.Add(n.Embed, [C.VocabSize, h], EmbedWeights), InputIds]);
        else
        {
            // Quantized packages store the table as fp16 and gather fp16 rows, widening only those: a Cast of the whole
            // table would be folded into a float32 copy at load, twice the table's bytes in memory.
            string table = w.HalfTable(n.Embed, [C.VocabSize, h], EmbedWeights);
            rows = G.Op("Cast", [G.Op("Gather", [table, InputIds])], Attr(("to", (int)ElementType.Float)));
            embed = C.TieWordEmbeddings && w.Storage.TiedHeadReadsEmbeddings
                ? G.Op("Cast", [table], Attr(("to", (int)ElementType.Float)))    // the fp16 output projection reads the same table
                : "";
        }
        return (G.Op("Reshape", [rows, G.Int64Vector(-1, h)]), embed);
    }
}
