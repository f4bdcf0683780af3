using Behemoth.Package;

namespace Behemoth.Formats.Config;

// AttentionKind is the package contract's (Behemoth.Package): the manifest's kv_cache entries carry it.

public enum FeedForwardKind { Dense, Moe }

/// <summary>How router logits become expert weights.</summary>
public enum RouterKind
{
    /// <summary>Softmax over all experts, then top-k (optionally renormalised); the weights scale the expert outputs.</summary>
    SoftmaxTopK,
    /// <summary>Top-k on the logits, then a sigmoid of the chosen ones; the weights scale the expert inputs (Llama 4).</summary>
    TopKSigmoid,
}

public enum QkNormKind
{
    None,
    /// <summary>RMSNorm over each head with a [head_dim] weight, before RoPE (Qwen3-MoE).</summary>
    PerHeadRms,
    /// <summary>RMSNorm over the whole q / k projection with [heads·head_dim] weights (OLMoE).</summary>
    ProjectionRms,
    /// <summary>Weightless RMS ("L2") norm per head after RoPE (Llama 4, RoPE layers only).</summary>
    L2,
}

/// <summary>Which dimensions RoPE rotates together: (i, i + d/2) as in <c>rotate_half</c>, or (2i, 2i+1) as Llama 4's complex form.</summary>
public enum RopeLayout { HalfSplit, Interleaved }

/// <summary>Routed experts stored one tensor set per expert, or fused into [experts, …] tensors (Llama 4).</summary>
public enum ExpertLayout { PerExpert, Fused }

/// <summary>Everything about one decoder layer that changes its math.</summary>
public sealed record LayerSpec(
    int Index,
    AttentionKind Attention,
    int Window,
    bool UseRope,
    QkNormKind QkNorm,
    bool TemperatureTuning,
    FeedForwardKind FeedForward,
    int DenseIntermediate);

/// <summary>The routed-expert block shared by the MoE layers of a model.</summary>
public sealed record MoeSpec(
    int NumExperts,
    int TopK,
    int ExpertIntermediate,
    RouterKind Router,
    bool NormTopKProb,
    int SharedIntermediate,
    bool SharedExpertSigmoidGate,
    ExpertLayout Layout);

/// <summary>
/// A decoder-only MoE transformer, normalised from an architecture's config.json. Every dimension an engine
/// or exporter uses comes from here; each architecture's reader fills it once, with every fallback in one place.
/// </summary>
public sealed record DecoderConfig
{
    public required string Architecture { get; init; }
    public required string ModelType { get; init; }
    public required string ConfigPath { get; init; }
    public required int VocabSize { get; init; }
    public required int HiddenSize { get; init; }
    public required int NumHeads { get; init; }
    public required int NumKvHeads { get; init; }
    public required int HeadDim { get; init; }
    public required double RmsNormEps { get; init; }
    public required string HiddenAct { get; init; }
    public required bool TieWordEmbeddings { get; init; }
    public required int MaxPositionEmbeddings { get; init; }

    /// <summary>q/k/v projections carry a bias.</summary>
    public required bool QkvBias { get; init; }

    /// <summary>The output projection carries a bias.</summary>
    public required bool OutputBias { get; init; }

    /// <summary>OLMoE's <c>clip_qkv</c>: q, k, v are clamped to ±this after projection and norm.</summary>
    public double? ClipQkv { get; init; }

    public required RopeConfig Rope { get; init; }
    public required RopeLayout RopeLayout { get; init; }
    public required MoeSpec Moe { get; init; }
    public required IReadOnlyList<LayerSpec> Layers { get; init; }

    /// <summary>Llama 4 attention temperature tuning: q ·= 1 + attn_scale · log(floor((pos + 1) / floor_scale) + 1).</summary>
    public double AttnScale { get; init; }

    public double FloorScale { get; init; } = 1;

    public required TensorNames Names { get; init; }

    public int[] EosTokenIds { get; init; } = [];
    public int? BosTokenId { get; init; }

    public int NumLayers => Layers.Count;
}
