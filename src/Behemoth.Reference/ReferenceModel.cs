using System.Numerics.Tensors;
using Behemoth.Formats.Architectures;
using Behemoth.Formats.Checkpoints;
using Behemoth.Formats.Config;
using Behemoth.Formats.Description;
using Behemoth.Formats.Errors;
using Behemoth.Reference.Blocks;
using Behemoth.Package;

namespace Behemoth.Reference;

/// <summary>
/// The reference engine: a float32 full-sequence forward pass of any runnable architecture, read top to
/// bottom like the Hugging Face modeling code it mirrors. Weights stay in the memory-mapped checkpoint and
/// are upcast per use; only the experts the router picks are read.
/// </summary>
public sealed class ReferenceModel : IDisposable
{
    private readonly Checkpoint _checkpoint;
    private readonly Weights _weights;

    private ReferenceModel(Checkpoint checkpoint, DecoderConfig config, ModelDescription description, Weights weights)
    {
        _checkpoint = checkpoint;
        Config = config;
        Description = description;
        _weights = weights;
    }

    public DecoderConfig Config { get; }

    public ModelDescription Description { get; }

    /// <summary>Tensor bytes read from the checkpoint so far.</summary>
    public long BytesRead => _checkpoint.BytesRead;

    /// <summary>Size of the checkpoint's weight files.</summary>
    public long CheckpointBytes => _checkpoint.WeightFileBytes;

    /// <summary>
    /// Opens a Hugging Face model directory and checks, before any computation, that the config is complete
    /// and every tensor it implies is present with the right shape and a floating-point dtype.
    /// </summary>
    public static ReferenceModel Load(string modelDirectory)
    {
        var reader = ArchitectureRegistry.LoadConfig(modelDirectory);
        var config = ArchitectureRegistry.ReadDecoder(reader);
        config.Rope.EnsureSupported(config.ConfigPath);
        if (config.HiddenAct != "silu")
            throw new ModelConfigException(config.ConfigPath, $"activation '{config.HiddenAct}' is not supported (supported: silu)", "hidden_act");
        var description = ModelDescription.FromDecoder(config);

        var checkpoint = Checkpoint.Open(modelDirectory);
        try
        {
            var tensors = new Dictionary<string, CheckpointTensor>(StringComparer.Ordinal);
            foreach (var spec in description.Tensors)
                tensors[spec.Name] = checkpoint.Get(spec.Name).Expect(spec.Shape);
            return new ReferenceModel(checkpoint, config, description, new Weights(tensors));
        }
        catch
        {
            checkpoint.Dispose();
            throw;
        }
    }

    /// <summary>Logits [tokens, vocab] (row-major) for one sequence at positions 0..T-1.</summary>
    public float[] Forward(ReadOnlySpan<int> tokens, CancellationToken cancellationToken = default) =>
        Forward(tokens, trace: null, cancellationToken);

    /// <summary>As <see cref="Forward(ReadOnlySpan{int}, CancellationToken)"/>, recording every routing decision per layer into <paramref name="trace"/>.</summary>
    public float[] Forward(ReadOnlySpan<int> tokens, IList<List<Routing>>? trace, CancellationToken cancellationToken = default) =>
        Forward(tokens, trace, moeInput: null, cancellationToken);

    /// <summary>
    /// As <see cref="Forward(ReadOnlySpan{int}, CancellationToken)"/>, handing each MoE layer's input (the
    /// post-attention-normed hidden states, [tokens, hidden]) to <paramref name="moeInput"/> with the layer index:
    /// what calibration needs to profile and refit experts.
    /// </summary>
    public float[] Forward(ReadOnlySpan<int> tokens, IList<List<Routing>>? trace, Action<int, ReadOnlyMemory<float>>? moeInput, CancellationToken cancellationToken = default)
    {
        var c = Config;
        var x = Embed(tokens);
        var state = new LayerBuffers(c, tokens.Length);
        foreach (var layer in c.Layers)
        {
            cancellationToken.ThrowIfCancellationRequested();
            RunAttention(layer, x, state);
            if (layer.FeedForward == FeedForwardKind.Moe) moeInput?.Invoke(layer.Index, state.Hn.AsMemory(0, tokens.Length * c.HiddenSize));
            List<Routing>? routes = trace is null || layer.FeedForward != FeedForwardKind.Moe ? null : new List<Routing>();
            RunFeedForward(layer, x, state, routes, routedOverride: null);
            if (routes is not null) trace!.Add(routes);
        }
        return Logits(x, tokens.Length);
    }

    /// <summary>
    /// The residual stream [tokens, hidden] after the token embeddings: the start of a layer-by-layer pass
    /// (<see cref="AttentionStep"/>, <see cref="FeedForwardStep"/>) that keeps only the residual stream between layers.
    /// </summary>
    public float[] Embed(ReadOnlySpan<int> tokens)
    {
        var c = Config;
        int seq = tokens.Length, h = c.HiddenSize;
        if (seq == 0) throw new BehemothException("no token ids given: at least one token is needed");
        for (int t = 0; t < seq; t++)
            if ((uint)tokens[t] >= (uint)c.VocabSize)
                throw new BehemothException($"token id {tokens[t]} at position {t} is outside the vocabulary (0..{c.VocabSize - 1})");
        var x = new float[seq * h];
        for (int t = 0; t < seq; t++)
        {
            using var row = new FloatView(_weights[c.Names.Embed], (long)tokens[t] * h, h);
            row.Span.CopyTo(x.AsSpan(t * h, h));
        }
        return x;
    }

    /// <summary>
    /// Decoder layer <paramref name="layer"/>'s attention half on the residual stream <paramref name="x"/> [tokens, hidden]
    /// (added in place); returns the feed-forward's input, the post-attention-normed hidden states [tokens, hidden].
    /// </summary>
    public float[] AttentionStep(int layer, float[] x)
    {
        var state = new LayerBuffers(Config, x.Length / Config.HiddenSize);
        RunAttention(Config.Layers[layer], x, state);
        return state.Hn;
    }

    /// <summary>
    /// Decoder layer <paramref name="layer"/>'s feed-forward half: adds its output on <paramref name="normed"/> (what
    /// <see cref="AttentionStep"/> returned) to <paramref name="x"/>. For a MoE layer, <paramref name="routedOverride"/>, when
    /// given, computes the routed experts' combined output [tokens, hidden] from the normed input instead of the
    /// checkpoint's router and experts (a pruned or distilled layer); the shared expert is the checkpoint's.
    /// </summary>
    public void FeedForwardStep(int layer, float[] x, float[] normed, Func<ReadOnlyMemory<float>, float[]>? routedOverride = null)
    {
        var state = new LayerBuffers(Config, x.Length / Config.HiddenSize);
        normed.AsSpan(0, x.Length).CopyTo(state.Hn);
        RunFeedForward(Config.Layers[layer], x, state, routes: null, routedOverride);
    }

    /// <summary>Logits [tokens, vocab] from the residual stream after the last layer.</summary>
    public float[] Logits(float[] x, int seq)
    {
        var c = Config;
        var n = c.Names;
        int h = c.HiddenSize;
        var hn = new float[seq * h];
        using (var w = _weights.View(n.FinalNorm)) Ops.RmsNorm(x, w.Span, hn, h, c.RmsNormEps);
        var logits = new float[seq * c.VocabSize];
        using (var head = _weights.View(c.TieWordEmbeddings ? n.Embed : n.LmHead))
            Ops.Linear(hn, head.Span, default, logits, h, c.VocabSize);
        return logits;
    }

    /// <summary>A layer's run state for one sequence.</summary>
    private sealed class LayerBuffers(DecoderConfig c, int seq)
    {
        public readonly int Seq = seq;
        public readonly float[] Hn = new float[seq * c.HiddenSize];                  // normed input      (T, hidden)
        public readonly float[] Q = new float[seq * c.NumHeads * c.HeadDim];         // queries           (T, heads·d)
        public readonly float[] K = new float[seq * c.NumKvHeads * c.HeadDim];       // keys              (T, kv_heads·d)
        public readonly float[] V = new float[seq * c.NumKvHeads * c.HeadDim];       // values            (T, kv_heads·d)
        public readonly float[] Attn = new float[seq * c.NumHeads * c.HeadDim];      // attention output  (T, heads·d)
        public readonly float[] Delta = new float[seq * c.HiddenSize];               // block output      (T, hidden)
        public readonly Rope Rope = new(c.Rope, c.RopeLayout, c.HeadDim, seq);
    }

    private void RunAttention(LayerSpec layer, float[] x, LayerBuffers s)
    {
        var c = Config;
        var n = c.Names;
        int seq = s.Seq, h = c.HiddenSize, d = c.HeadDim;
        int qDim = c.NumHeads * d, kvDim = c.NumKvHeads * d;
        var (hn, q, k, v, attn, delta, rope) = (s.Hn, s.Q, s.K, s.V, s.Attn, s.Delta, s.Rope);
        string L(string template) => TensorNames.Format(template, layer.Index);

        // hidden_states = self.input_layernorm(hidden_states)
        using (var w = _weights.View(L(n.InputNorm))) Ops.RmsNorm(x, w.Span, hn, h, c.RmsNormEps);

        // q, k, v projections (+ bias)
        Project(hn, L(n.Q), c.QkvBias ? L(n.QBias) : null, q, h, qDim);
        Project(hn, L(n.K), c.QkvBias ? L(n.KBias) : null, k, h, kvDim);
        Project(hn, L(n.V), c.QkvBias ? L(n.VBias) : null, v, h, kvDim);

        // OLMoE: q_norm / k_norm over the whole projections, then clip_qkv.
        if (layer.QkNorm == QkNormKind.ProjectionRms)
        {
            using (var w = _weights.View(L(n.QNorm))) Ops.RmsNorm(q, w.Span, q, qDim, c.RmsNormEps);
            using (var w = _weights.View(L(n.KNorm))) Ops.RmsNorm(k, w.Span, k, kvDim, c.RmsNormEps);
        }
        if (c.ClipQkv is double clip)
        {
            TensorPrimitives.Clamp(q, (float)-clip, (float)clip, q);
            TensorPrimitives.Clamp(k, (float)-clip, (float)clip, k);
            TensorPrimitives.Clamp(v, (float)-clip, (float)clip, v);
        }
        // Qwen3-MoE: RMSNorm per head, before RoPE.
        if (layer.QkNorm == QkNormKind.PerHeadRms)
        {
            using (var w = _weights.View(L(n.QNorm))) Ops.RmsNorm(q, w.Span, q, d, c.RmsNormEps);
            using (var w = _weights.View(L(n.KNorm))) Ops.RmsNorm(k, w.Span, k, d, c.RmsNormEps);
        }

        if (layer.UseRope)
        {
            rope.Apply(q, c.NumHeads);
            rope.Apply(k, c.NumKvHeads);
        }
        // Llama 4: weightless RMS ("L2") norm per head after RoPE, on RoPE layers.
        if (layer.QkNorm == QkNormKind.L2)
        {
            Ops.RmsNorm(q, default, q, d, c.RmsNormEps);
            Ops.RmsNorm(k, default, k, d, c.RmsNormEps);
        }
        // Llama 4 NoPE layers: attn_scales = log(floor((pos + 1) / floor_scale) + 1) * attn_scale + 1 scales q.
        if (layer.TemperatureTuning)
            for (int t = 0; t < seq; t++)
            {
                float sc = (float)(Math.Log(Math.Floor((t + 1.0) / c.FloorScale) + 1.0) * c.AttnScale + 1.0);
                TensorPrimitives.Multiply(q.AsSpan(t * qDim, qDim), sc, q.AsSpan(t * qDim, qDim));
            }

        Attention.Compute(layer, q, k, v, attn, seq, c.NumHeads, c.NumKvHeads, d);

        // hidden_states = residual + self.o_proj(attn_output)
        Project(attn, L(n.O), c.OutputBias ? L(n.OBias) : null, delta, qDim, h);
        TensorPrimitives.Add(x, delta, x);

        // self.post_attention_layernorm(hidden_states): the feed-forward's input
        using (var w = _weights.View(L(n.PostAttentionNorm))) Ops.RmsNorm(x, w.Span, hn, h, c.RmsNormEps);
    }

    private void RunFeedForward(LayerSpec layer, float[] x, LayerBuffers s, List<Routing>? routes, Func<ReadOnlyMemory<float>, float[]>? routedOverride)
    {
        var c = Config;
        var n = c.Names;
        int h = c.HiddenSize;
        string L(string template) => TensorNames.Format(template, layer.Index);
        // hidden_states = residual + self.mlp(self.post_attention_layernorm(hidden_states))
        if (layer.FeedForward == FeedForwardKind.Moe)
            MoeBlock.Forward(c, _weights, layer.Index, s.Hn, s.Delta, routes, routedOverride?.Invoke(s.Hn.AsMemory(0, s.Seq * h)));
        else
            FeedForward.SwiGlu(_weights, L(n.DenseGate!), L(n.DenseUp!), L(n.DenseDown!), s.Hn, s.Delta, h, layer.DenseIntermediate);
        TensorPrimitives.Add(x, s.Delta, x);
    }

    /// <summary>The router of MoE layer <paramref name="layer"/>, [experts, hidden].</summary>
    public float[] RouterWeights(int layer)
    {
        using var w = _weights.View(TensorNames.Format(Config.Names.Router, layer));
        return w.Span.ToArray();
    }

    /// <summary>
    /// Routed expert <paramref name="expert"/> of MoE layer <paramref name="layer"/> in nn.Linear layout whatever the
    /// checkpoint stores: gate and up [intermediate, hidden], down [hidden, intermediate].
    /// </summary>
    public (float[] Gate, float[] Up, float[] Down) ExpertWeights(int layer, int expert)
    {
        var c = Config;
        var n = c.Names;
        int h = c.HiddenSize, inter = c.Moe.ExpertIntermediate;
        if (c.Moe.Layout != ExpertLayout.Fused)
        {
            using var g = _weights.View(TensorNames.Format(n.ExpertGate!, layer, expert));
            using var u = _weights.View(TensorNames.Format(n.ExpertUp!, layer, expert));
            using var d = _weights.View(TensorNames.Format(n.ExpertDown!, layer, expert));
            return (g.Span.ToArray(), u.Span.ToArray(), d.Span.ToArray());
        }
        // Llama 4: gate_up [hidden, 2·inter] (gate columns first) and down [inter, hidden], used as x · M
        var (gate, up, down) = (new float[inter * h], new float[inter * h], new float[h * inter]);
        using (var gu = _weights.Slice(TensorNames.Format(n.FusedGateUp!, layer), expert))
            for (int r = 0; r < h; r++)
                for (int j = 0; j < inter; j++)
                {
                    gate[j * h + r] = gu.Span[r * 2 * inter + j];
                    up[j * h + r] = gu.Span[r * 2 * inter + inter + j];
                }
        using (var dn = _weights.Slice(TensorNames.Format(n.FusedDown!, layer), expert))
            for (int j = 0; j < inter; j++)
                for (int r = 0; r < h; r++)
                    down[r * inter + j] = dn.Span[j * h + r];
        return (gate, up, down);
    }

    private void Project(ReadOnlySpan<float> input, string weight, string? bias, Span<float> output, int inDim, int outDim)
    {
        using var w = _weights.View(weight);
        if (bias is null)
        {
            Ops.Linear(input, w.Span, default, output, inDim, outDim);
            return;
        }
        using var b = _weights.View(bias);
        Ops.Linear(input, w.Span, b.Span, output, inDim, outDim);
    }

    public void Dispose() => _checkpoint.Dispose();
}
