using Behemoth.Formats.Config;

namespace Behemoth.Formats.Architectures;

/// <summary>
/// <c>Qwen2MoeForCausalLM</c> (Qwen1.5-MoE, Qwen2-MoE): q/k/v bias, softmax top-k routing renormalised only
/// with <c>norm_topk_prob</c>, a shared expert scaled by sigmoid(<c>shared_expert_gate</c>), dense MLP layers
/// where <c>mlp_only_layers</c> / <c>decoder_sparse_step</c> say so, and Qwen's sliding-window layer rule.
/// </summary>
public sealed class Qwen2Moe : DecoderArchitecture
{
    public override string Name => "Qwen2MoeForCausalLM";

    internal static readonly TensorNames QwenNames = new()
    {
        Router = "model.layers.{L}.mlp.gate.weight",
        ExpertGate = "model.layers.{L}.mlp.experts.{E}.gate_proj.weight",
        ExpertUp = "model.layers.{L}.mlp.experts.{E}.up_proj.weight",
        ExpertDown = "model.layers.{L}.mlp.experts.{E}.down_proj.weight",
        DenseGate = "model.layers.{L}.mlp.gate_proj.weight",
        DenseUp = "model.layers.{L}.mlp.up_proj.weight",
        DenseDown = "model.layers.{L}.mlp.down_proj.weight",
    };

    private static readonly TensorNames Names = QwenNames with
    {
        SharedGate = "model.layers.{L}.mlp.shared_expert.gate_proj.weight",
        SharedUp = "model.layers.{L}.mlp.shared_expert.up_proj.weight",
        SharedDown = "model.layers.{L}.mlp.shared_expert.down_proj.weight",
        SharedExpertGate = "model.layers.{L}.mlp.shared_expert_gate.weight",
    };

    public override DecoderConfig Read(ConfigReader c)
    {
        var common = ReadCommon(c, defaultEps: 1e-6, defaultTheta: 10000);
        int experts = c.Int("num_experts", 60);
        var moe = new MoeSpec(
            NumExperts: experts,
            TopK: c.Int("num_experts_per_tok", 4, min: 1),
            ExpertIntermediate: c.Int("moe_intermediate_size", 1408, min: 1),
            Router: RouterKind.SoftmaxTopK,
            NormTopKProb: c.Bool("norm_topk_prob", false),
            SharedIntermediate: c.Int("shared_expert_intermediate_size", 5632, min: 1),
            SharedExpertSigmoidGate: true,
            Layout: ExpertLayout.PerExpert);
        var attention = Qwen2AttentionKinds(c, common.NumLayers);
        var isMoe = QwenMoeLayers(c, common.NumLayers, experts);
        int dense = c.Int("intermediate_size", 5632, min: 1);
        var layers = Enumerable.Range(0, common.NumLayers).Select(i => new LayerSpec(
            i, attention[i].Kind, attention[i].Window, UseRope: true, QkNorm: QkNormKind.None, TemperatureTuning: false,
            FeedForward: isMoe[i] ? FeedForwardKind.Moe : FeedForwardKind.Dense, DenseIntermediate: dense)).ToList();
        // Qwen2-MoE always had q/k/v biases; newer configs spell it qkv_bias.
        return Build(c, common, moe, layers, Names, qkvBias: c.Bool("qkv_bias", true), outputBias: false);
    }
}
