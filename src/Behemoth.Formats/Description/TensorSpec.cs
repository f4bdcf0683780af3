namespace Behemoth.Formats.Description;

/// <summary>What a weight is for; decides whether it counts as active and how it is quantized.</summary>
public enum TensorRole
{
    Embedding,
    LmHead,
    Norm,
    Attention,
    AttentionBias,
    Router,
    /// <summary>Routed experts: only top-k of them run per token.</summary>
    RoutedExperts,
    SharedExpert,
    DenseMlp,
}

/// <summary>
/// One tensor a checkpoint must hold. <see cref="ExpertCount"/> is 1 for a per-expert tensor and the number
/// of experts for a fused one, so <c>Elements / ExpertCount</c> is one expert's share.
/// </summary>
public sealed record TensorSpec(string Name, long[] Shape, TensorRole Role, int Layer = -1, int Expert = -1, int ExpertCount = 0)
{
    public long Elements => Shape.Aggregate(1L, (a, b) => a * b);

    /// <summary>Stays in float32 whatever the weight precision (the exporter keeps routers, norms and biases exact).</summary>
    public bool KeptFullPrecision => Role is TensorRole.Norm or TensorRole.Router or TensorRole.AttentionBias;
}
