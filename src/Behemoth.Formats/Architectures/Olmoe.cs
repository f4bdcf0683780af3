using Behemoth.Formats.Config;
using Behemoth.Package;

namespace Behemoth.Formats.Architectures;

/// <summary>
/// <c>OlmoeForCausalLM</c>: RMSNorm over the whole q and k projections (before splitting heads), optional
/// <c>clip_qkv</c> clamping, <c>attention_bias</c>, softmax top-k routing renormalised with <c>norm_topk_prob</c>.
/// </summary>
public sealed class Olmoe : DecoderArchitecture
{
    public override string Name => "OlmoeForCausalLM";

    // OLMoE names its router and experts as Qwen-MoE does (mlp.gate, mlp.experts.{E}.*_proj).
    private static TensorNames Names => Qwen2Moe.QwenNames;

    public override DecoderConfig Read(ConfigReader c)
    {
        var common = ReadCommon(c, defaultEps: 1e-5, defaultTheta: 10000);
        var moe = new MoeSpec(
            NumExperts: c.Int("num_experts", 64, min: 1),
            TopK: c.Int("num_experts_per_tok", 8, min: 1),
            ExpertIntermediate: c.RequiredInt("intermediate_size"),
            Router: RouterKind.SoftmaxTopK,
            NormTopKProb: c.Bool("norm_topk_prob", false),
            SharedIntermediate: 0,
            SharedExpertSigmoidGate: false,
            Layout: ExpertLayout.PerExpert);
        var layers = Enumerable.Range(0, common.NumLayers).Select(i => new LayerSpec(
            i, AttentionKind.Full, 0, UseRope: true, QkNorm: QkNormKind.ProjectionRms, TemperatureTuning: false,
            FeedForward: FeedForwardKind.Moe, DenseIntermediate: 0)).ToList();
        double? clip = c.OptionalDouble("clip_qkv");
        if (clip is <= 0)
            throw c.Error("clip_qkv", $"must be positive or null, found {clip}");
        bool bias = c.Bool("attention_bias", false);
        return Build(c, common, moe, layers, Names, qkvBias: bias, outputBias: bias) with { ClipQkv = clip };
    }
}
