using Behemoth.Formats.Config;
using Behemoth.Package;

namespace Behemoth.Formats.Architectures;

/// <summary>
/// <c>Qwen3MoeForCausalLM</c>: Qwen2-MoE without the shared expert, with per-head RMSNorm of q and k
/// (weights [head_dim]) before RoPE, <c>attention_bias</c> on all four projections, and <c>head_dim</c>
/// independent of hidden_size / heads. With <c>use_sliding_window</c> every layer slides.
/// </summary>
public sealed class Qwen3Moe : DecoderArchitecture
{
    public override string Name => "Qwen3MoeForCausalLM";

    public override DecoderConfig Read(ConfigReader c)
    {
        var common = ReadCommon(c, defaultEps: 1e-6, defaultTheta: 10000);
        int experts = c.Int("num_experts", 128);
        var moe = new MoeSpec(
            NumExperts: experts,
            TopK: c.Int("num_experts_per_tok", 8, min: 1),
            ExpertIntermediate: c.Int("moe_intermediate_size", 768, min: 1),
            Router: RouterKind.SoftmaxTopK,
            NormTopKProb: c.Bool("norm_topk_prob", false),
            SharedIntermediate: 0,
            SharedExpertSigmoidGate: false,
            Layout: ExpertLayout.PerExpert);
        // Qwen3-MoE applies sliding_window (when use_sliding_window) to every layer; max_window_layers is unused.
        int? window = c.Bool("use_sliding_window", false) ? c.OptionalInt("sliding_window", min: 1) : null;
        var isMoe = QwenMoeLayers(c, common.NumLayers, experts);
        int dense = c.Int("intermediate_size", 6144, min: 1);
        var layers = Enumerable.Range(0, common.NumLayers).Select(i => new LayerSpec(
            i, window is null ? AttentionKind.Full : AttentionKind.Sliding, window ?? 0, UseRope: true, QkNorm: QkNormKind.PerHeadRms, TemperatureTuning: false,
            FeedForward: isMoe[i] ? FeedForwardKind.Moe : FeedForwardKind.Dense, DenseIntermediate: dense)).ToList();
        bool bias = c.Bool("attention_bias", false);
        return Build(c, common, moe, layers, Qwen2Moe.QwenNames, qkvBias: bias, outputBias: bias);
    }
}
