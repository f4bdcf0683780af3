namespace Behemoth.Formats.Config;

/// <summary>
/// Hugging Face tensor names of one architecture, as templates: <c>{L}</c> is the layer index and <c>{E}</c>
/// the expert index. Each architecture fills one table, so no tensor name is spelled anywhere else.
/// A <c>null</c> template means the architecture has no such tensor.
/// </summary>
public sealed record TensorNames
{
    public string Embed { get; init; } = "model.embed_tokens.weight";
    public string FinalNorm { get; init; } = "model.norm.weight";
    public string LmHead { get; init; } = "lm_head.weight";

    public string InputNorm { get; init; } = "model.layers.{L}.input_layernorm.weight";
    public string PostAttentionNorm { get; init; } = "model.layers.{L}.post_attention_layernorm.weight";

    public string Q { get; init; } = "model.layers.{L}.self_attn.q_proj.weight";
    public string K { get; init; } = "model.layers.{L}.self_attn.k_proj.weight";
    public string V { get; init; } = "model.layers.{L}.self_attn.v_proj.weight";
    public string O { get; init; } = "model.layers.{L}.self_attn.o_proj.weight";
    public string QBias { get; init; } = "model.layers.{L}.self_attn.q_proj.bias";
    public string KBias { get; init; } = "model.layers.{L}.self_attn.k_proj.bias";
    public string VBias { get; init; } = "model.layers.{L}.self_attn.v_proj.bias";
    public string OBias { get; init; } = "model.layers.{L}.self_attn.o_proj.bias";
    public string QNorm { get; init; } = "model.layers.{L}.self_attn.q_norm.weight";
    public string KNorm { get; init; } = "model.layers.{L}.self_attn.k_norm.weight";

    /// <summary>Router weight [experts, hidden].</summary>
    public required string Router { get; init; }

    // Per-expert layout: [intermediate, hidden] gate and up, [hidden, intermediate] down (nn.Linear layout).
    public string? ExpertGate { get; init; }
    public string? ExpertUp { get; init; }
    public string? ExpertDown { get; init; }

    // Fused layout (Llama 4): gate_up [experts, hidden, 2·intermediate] (gate columns first), down [experts, intermediate, hidden].
    public string? FusedGateUp { get; init; }
    public string? FusedDown { get; init; }

    public string? SharedGate { get; init; }
    public string? SharedUp { get; init; }
    public string? SharedDown { get; init; }

    /// <summary>Qwen2-MoE's [1, hidden] gate whose sigmoid scales the shared expert.</summary>
    public string? SharedExpertGate { get; init; }

    // Dense MLP of the layers that are not MoE.
    public string? DenseGate { get; init; }
    public string? DenseUp { get; init; }
    public string? DenseDown { get; init; }

    /// <summary>Resolves a template for layer <paramref name="layer"/> and expert <paramref name="expert"/>.</summary>
    public static string Format(string template, int layer = -1, int expert = -1) =>
        template.Replace("{L}", layer.ToString(System.Globalization.CultureInfo.InvariantCulture), StringComparison.Ordinal)
                .Replace("{E}", expert.ToString(System.Globalization.CultureInfo.InvariantCulture), StringComparison.Ordinal);

    /// <summary>The same table with every name prefixed (Llama 4's multimodal checkpoint nests the text model under <c>language_model.</c>).</summary>
    public TensorNames WithPrefix(string prefix)
    {
        string? P(string? name) => name is null ? null : prefix + name;
        return this with
        {
            Embed = prefix + Embed, FinalNorm = prefix + FinalNorm, LmHead = prefix + LmHead,
            InputNorm = prefix + InputNorm, PostAttentionNorm = prefix + PostAttentionNorm,
            Q = prefix + Q, K = prefix + K, V = prefix + V, O = prefix + O,
            QBias = prefix + QBias, KBias = prefix + KBias, VBias = prefix + VBias, OBias = prefix + OBias,
            QNorm = prefix + QNorm, KNorm = prefix + KNorm, Router = prefix + Router,
            ExpertGate = P(ExpertGate), ExpertUp = P(ExpertUp), ExpertDown = P(ExpertDown),
            FusedGateUp = P(FusedGateUp), FusedDown = P(FusedDown),
            SharedGate = P(SharedGate), SharedUp = P(SharedUp), SharedDown = P(SharedDown),
            SharedExpertGate = P(SharedExpertGate),
            DenseGate = P(DenseGate), DenseUp = P(DenseUp), DenseDown = P(DenseDown),
        };
    }
}
