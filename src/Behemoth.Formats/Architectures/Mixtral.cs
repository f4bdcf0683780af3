using Behemoth.Formats.Config;
using Behemoth.Package;

namespace Behemoth.Formats.Architectures;

/// <summary>
/// <c>MixtralForCausalLM</c>: Llama attention (optional sliding window on every layer) and a sparse MoE block
/// whose router softmax is renormalised over the top-k experts; experts are SwiGLU with w1 (gate), w3 (up), w2 (down).
/// </summary>
public sealed class Mixtral : DecoderArchitecture
{
    public override string Name => "MixtralForCausalLM";

    private static readonly TensorNames Names = new()
    {
        Router = "model.layers.{L}.block_sparse_moe.gate.weight",
        ExpertGate = "model.layers.{L}.block_sparse_moe.experts.{E}.w1.weight",
        ExpertUp = "model.layers.{L}.block_sparse_moe.experts.{E}.w3.weight",
        ExpertDown = "model.layers.{L}.block_sparse_moe.experts.{E}.w2.weight",
    };

    public override DecoderConfig Read(ConfigReader c)
    {
        var common = ReadCommon(c, defaultEps: 1e-5, defaultTheta: 1e6);
        int? window = c.OptionalInt("sliding_window", min: 1);
        var moe = new MoeSpec(
            NumExperts: c.Int("num_local_experts", 8, min: 1),
            TopK: c.Int("num_experts_per_tok", 2, min: 1),
            ExpertIntermediate: c.RequiredInt("intermediate_size"),
            Router: RouterKind.SoftmaxTopK,
            NormTopKProb: true,
            SharedIntermediate: 0,
            SharedExpertSigmoidGate: false,
            Layout: ExpertLayout.PerExpert);
        var layers = Enumerable.Range(0, common.NumLayers).Select(i => new LayerSpec(
            i,
            window is null ? AttentionKind.Full : AttentionKind.Sliding,
            window ?? 0,
            UseRope: true,
            QkNorm: QkNormKind.None,
            TemperatureTuning: false,
            FeedForward: FeedForwardKind.Moe,
            DenseIntermediate: 0)).ToList();
        return Build(c, common, moe, layers, Names, qkvBias: false, outputBias: false);
    }
}
