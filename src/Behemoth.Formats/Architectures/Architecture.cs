using Behemoth.Formats.Config;
using Behemoth.Formats.Description;
using Behemoth.Package;

namespace Behemoth.Formats.Architectures;

/// <summary>One Hugging Face architecture (<c>architectures[0]</c> in config.json).</summary>
public abstract class Architecture
{
    /// <summary>The class name Hugging Face writes in <c>architectures</c>.</summary>
    public abstract string Name { get; }

    /// <summary>Whether the engines can run it, or it can only be described (inspect, memory planning).</summary>
    public virtual bool IsRunnable => true;

    /// <summary>Tensors, parameter counts and sizes, from config.json alone.</summary>
    public abstract ModelDescription Describe(ConfigReader config);
}

/// <summary>A runnable architecture: its config normalises to a <see cref="DecoderConfig"/>.</summary>
public abstract class DecoderArchitecture : Architecture
{
    public abstract DecoderConfig Read(ConfigReader config);

    public override ModelDescription Describe(ConfigReader config) => ModelDescription.FromDecoder(Read(config));

    /// <summary>Fields every supported decoder reads the same way; defaults differ per architecture.</summary>
    protected sealed record Common(
        int VocabSize, int HiddenSize, int NumLayers, int NumHeads, int NumKvHeads, int HeadDim,
        double RmsNormEps, string HiddenAct, bool TieWordEmbeddings, int MaxPositions, RopeConfig Rope,
        int? BosTokenId, int[] EosTokenIds);

    // Sanity bounds far above any published model; they keep shape arithmetic inside 32-bit integers.
    private const int MaxLayers = 10_000;
    private const int MaxExperts = 65_536;
    private const int MaxDimension = 1 << 24;

    private static int Bounded(ConfigReader c, string field, int value, int max) =>
        value <= max ? value : throw c.Error(field, $"{value} is beyond any real model (at most {max})");

    protected static Common ReadCommon(ConfigReader c, double defaultEps, double defaultTheta, ConfigReader? tieFrom = null, int? defaultHeadDim = null)
    {
        int hidden = c.RequiredInt("hidden_size");
        int heads = c.RequiredInt("num_attention_heads");
        int kvHeads = c.Int("num_key_value_heads", heads, min: 1);
        if (heads % kvHeads != 0)
            throw c.Error("num_key_value_heads", $"must divide num_attention_heads ({heads}), found {kvHeads}");
        int? headDim = c.OptionalInt("head_dim", min: 1) ?? defaultHeadDim;
        if (headDim is null && hidden % heads != 0)
            throw c.Error("hidden_size", $"must be a multiple of num_attention_heads ({heads}) when head_dim is not given, found {hidden}");
        int dim = headDim ?? hidden / heads;
        if ((long)heads * dim > MaxDimension)
            throw c.Error("num_attention_heads", $"num_attention_heads × head_dim = {(long)heads * dim} is beyond any real model (at most {MaxDimension})");
        if (dim % 2 != 0)
            throw c.Error("head_dim", $"must be even for rotary embeddings, found {dim}");
        double eps = c.Double("rms_norm_eps", defaultEps);
        if (eps < 0)
            throw c.Error("rms_norm_eps", $"must not be negative, found {eps}");
        var rope = RopeConfig.Read(c, defaultTheta);
        if (rope.Theta <= 0 || rope.Factor <= 0)
            throw c.Error(rope.SourceField, $"RoPE theta and factor must be positive, found theta {rope.Theta}, factor {rope.Factor}");
        bool tie = (tieFrom ?? c).Bool("tie_word_embeddings", c.Bool("tie_word_embeddings", false));
        return new Common(
            VocabSize: c.RequiredInt("vocab_size"),
            HiddenSize: hidden,
            NumLayers: Bounded(c, "num_hidden_layers", c.RequiredInt("num_hidden_layers"), MaxLayers),
            NumHeads: heads,
            NumKvHeads: kvHeads,
            HeadDim: dim,
            RmsNormEps: eps,
            HiddenAct: c.String("hidden_act", "silu"),
            TieWordEmbeddings: tie,
            MaxPositions: c.Int("max_position_embeddings", 4096, min: 1),
            Rope: rope,
            BosTokenId: c.OptionalInt("bos_token_id"),
            EosTokenIds: c.IntOrIntArray("eos_token_id"));
    }

    /// <summary>
    /// Qwen2-MoE sliding-window layers (Qwen2MoeConfig): <c>layer_types</c> when given; otherwise, with
    /// <c>use_sliding_window</c>, the even layers (i + 1 odd) below <c>max_window_layers</c> slide over the last
    /// <c>sliding_window</c> positions.
    /// </summary>
    protected static (AttentionKind Kind, int Window)[] Qwen2AttentionKinds(ConfigReader c, int layers)
    {
        bool use = c.Bool("use_sliding_window", false);
        int maxWindowLayers = c.Int("max_window_layers", layers);
        var types = ReadLayerTypes(c, layers);
        return Enumerable.Range(0, layers).Select(i =>
        {
            bool sliding = types is not null ? types[i] == "sliding_attention" : use && (i + 1) % 2 != 0 && i < maxWindowLayers;
            if (!sliding) return (AttentionKind.Full, 0);
            int w = c.OptionalInt("sliding_window", min: 1)
                ?? throw c.Error("sliding_window", $"layer {i} is a sliding-window layer but no window size is given");
            return (AttentionKind.Sliding, w);
        }).ToArray();
    }

    /// <summary><c>layer_types</c> if present, checked for length and known values.</summary>
    protected static string[]? ReadLayerTypes(ConfigReader c, int layers)
    {
        var types = c.OptionalStringArray("layer_types");
        if (types is null) return null;
        if (types.Length != layers)
            throw c.Error("layer_types", $"must list {layers} layers (num_hidden_layers), found {types.Length}");
        string[] known = ["full_attention", "sliding_attention", "chunked_attention"];
        for (int i = 0; i < types.Length; i++)
            if (!known.Contains(types[i]))
                throw c.Error($"layer_types[{i}]", $"unknown layer type '{types[i]}' (known: {string.Join(", ", known)})");
        return types;
    }

    /// <summary>Qwen-style MoE placement: a layer is MoE unless listed in <c>mlp_only_layers</c> or off the <c>decoder_sparse_step</c>.</summary>
    protected static bool[] QwenMoeLayers(ConfigReader c, int layers, int numExperts)
    {
        int step = c.Int("decoder_sparse_step", 1, min: 1);
        var mlpOnly = c.OptionalIntArray("mlp_only_layers") ?? [];
        return Enumerable.Range(0, layers)
            .Select(i => !mlpOnly.Contains(i) && numExperts > 0 && (i + 1) % step == 0)
            .ToArray();
    }

    protected static DecoderConfig Build(ConfigReader c, Common common, MoeSpec moe, IReadOnlyList<LayerSpec> layers,
        TensorNames names, bool qkvBias, bool outputBias, RopeLayout rope = RopeLayout.HalfSplit, string? architecture = null, string? modelType = null)
    {
        Bounded(c, "num_experts", moe.NumExperts, MaxExperts);
        Bounded(c, "intermediate_size", moe.ExpertIntermediate, MaxDimension);
        Bounded(c, "intermediate_size", moe.SharedIntermediate, MaxDimension);
        Bounded(c, "hidden_size", common.HiddenSize, MaxDimension);
        Bounded(c, "vocab_size", common.VocabSize, 1 << 26);
        foreach (var layer in layers) Bounded(c, "intermediate_size", layer.DenseIntermediate, MaxDimension);
        if (moe.TopK > moe.NumExperts)
            throw c.Error("num_experts_per_tok", $"must not exceed the number of experts ({moe.NumExperts}), found {moe.TopK}");
        return new DecoderConfig
        {
            Architecture = architecture ?? c.OptionalStringArray("architectures")?.FirstOrDefault() ?? "",
            ModelType = modelType ?? c.String("model_type", ""),
            ConfigPath = c.File,
            VocabSize = common.VocabSize,
            HiddenSize = common.HiddenSize,
            NumHeads = common.NumHeads,
            NumKvHeads = common.NumKvHeads,
            HeadDim = common.HeadDim,
            RmsNormEps = common.RmsNormEps,
            HiddenAct = common.HiddenAct,
            TieWordEmbeddings = common.TieWordEmbeddings,
            MaxPositionEmbeddings = common.MaxPositions,
            QkvBias = qkvBias,
            OutputBias = outputBias,
            Rope = common.Rope,
            RopeLayout = rope,
            Moe = moe,
            Layers = layers,
            Names = names,
            BosTokenId = common.BosTokenId,
            EosTokenIds = common.EosTokenIds,
        };
    }
}
