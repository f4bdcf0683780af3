using Behemoth.Formats.Config;
using Behemoth.Package;

namespace Behemoth.Formats.Architectures;

/// <summary>
/// <c>Llama4ForCausalLM</c> (<c>model_type</c> <c>llama4_text</c>): routed experts fused in [experts, …] tensors,
/// top-k routing whose sigmoid scores scale the expert <em>input</em>, an always-on shared expert, MoE layers
/// every <c>interleave_moe_layer_step</c> (dense layers use <c>intermediate_size_mlp</c>), NoPE layers
/// (<c>no_rope_layers</c>) with attention temperature tuning, chunked attention and weightless QK norm on the
/// RoPE layers, and interleaved (complex-number) RoPE.
/// </summary>
public class Llama4 : DecoderArchitecture
{
    public override string Name => "Llama4ForCausalLM";

    protected static readonly TensorNames Names = new()
    {
        Router = "model.layers.{L}.feed_forward.router.weight",
        FusedGateUp = "model.layers.{L}.feed_forward.experts.gate_up_proj",
        FusedDown = "model.layers.{L}.feed_forward.experts.down_proj",
        SharedGate = "model.layers.{L}.feed_forward.shared_expert.gate_proj.weight",
        SharedUp = "model.layers.{L}.feed_forward.shared_expert.up_proj.weight",
        SharedDown = "model.layers.{L}.feed_forward.shared_expert.down_proj.weight",
        DenseGate = "model.layers.{L}.feed_forward.gate_proj.weight",
        DenseUp = "model.layers.{L}.feed_forward.up_proj.weight",
        DenseDown = "model.layers.{L}.feed_forward.down_proj.weight",
    };

    public override DecoderConfig Read(ConfigReader c) => ReadText(c, c, Names, Name, c.String("model_type", "llama4_text"));

    protected static DecoderConfig ReadText(ConfigReader root, ConfigReader c, TensorNames names, string architecture, string modelType)
    {
        var common = ReadCommon(c, defaultEps: 1e-5, defaultTheta: 500000, tieFrom: root, defaultHeadDim: 128);
        int n = common.NumLayers;
        int intermediate = c.Int("intermediate_size", 8192, min: 1);
        var moe = new MoeSpec(
            NumExperts: c.Int("num_local_experts", 16, min: 1),
            TopK: c.Int("num_experts_per_tok", 1, min: 1),
            ExpertIntermediate: intermediate,
            Router: RouterKind.TopKSigmoid,
            NormTopKProb: false,
            SharedIntermediate: intermediate,
            SharedExpertSigmoidGate: false,
            Layout: ExpertLayout.Fused);

        // no_rope_layers[i] == 1 means layer i USES RoPE; an empty or absent list means every
        // no_rope_layer_interval-th layer is NoPE.
        int interval = c.Int("no_rope_layer_interval", 4, min: 1);
        var useRope = c.OptionalIntArray("no_rope_layers") is { Length: > 0 } given
            ? given
            : Enumerable.Range(0, n).Select(i => (i + 1) % interval != 0 ? 1 : 0).ToArray();
        if (useRope.Length != n)
            throw c.Error("no_rope_layers", $"must list {n} layers (num_hidden_layers), found {useRope.Length}");

        int step = c.Int("interleave_moe_layer_step", 1, min: 1);
        var moeLayers = c.OptionalIntArray("moe_layers") ?? Enumerable.Range(0, n).Where(i => i % step == step - 1).ToArray();
        foreach (int m in moeLayers)
            if (m >= n) throw c.Error("moe_layers", $"lists layer {m} but the model has {n} layers");

        int? chunk = c.OptionalInt("attention_chunk_size", min: 1);
        var types = ReadLayerTypes(c, n);
        bool qkNorm = c.Bool("use_qk_norm", true);
        bool temperature = c.Bool("attn_temperature_tuning", true);
        int denseIntermediate = c.Int("intermediate_size_mlp", 16384, min: 1);

        var layers = Enumerable.Range(0, n).Select(i =>
        {
            bool rope = useRope[i] != 0;
            bool chunked = types is not null ? types[i] == "chunked_attention" : rope && chunk is not null;
            if (chunked && chunk is null)
                throw c.Error("attention_chunk_size", $"layer {i} is a chunked_attention layer but no chunk size is given");
            if (types is not null && types[i] == "sliding_attention")
                throw c.Error($"layer_types[{i}]", "Llama 4 layers are full_attention or chunked_attention");
            return new LayerSpec(
                i,
                chunked ? AttentionKind.Chunked : AttentionKind.Full,
                chunked ? chunk!.Value : 0,
                UseRope: rope,
                QkNorm: rope && qkNorm ? QkNormKind.L2 : QkNormKind.None,
                TemperatureTuning: !rope && temperature,
                FeedForward: moeLayers.Contains(i) ? FeedForwardKind.Moe : FeedForwardKind.Dense,
                DenseIntermediate: denseIntermediate);
        }).ToList();

        double floorScale = c.Double("floor_scale", 8192);
        if (floorScale <= 0)
            throw c.Error("floor_scale", $"must be positive, found {floorScale}");
        bool bias = c.Bool("attention_bias", false);
        return Build(c, common, moe, layers, names, qkvBias: bias, outputBias: bias, RopeLayout.Interleaved, architecture, modelType) with
        {
            AttnScale = c.Double("attn_scale", 0.1),
            FloorScale = floorScale,
            ConfigPath = root.File,
        };
    }
}

/// <summary>
/// <c>Llama4ForConditionalGeneration</c> (Llama 4 Scout / Maverick checkpoints): the text model of
/// <see cref="Llama4"/> read from <c>text_config</c>, with tensors under <c>language_model.</c>. The vision
/// tower is not part of Behemoth's models and is ignored.
/// </summary>
public sealed class Llama4Conditional : Llama4
{
    public override string Name => "Llama4ForConditionalGeneration";

    public override DecoderConfig Read(ConfigReader c) =>
        ReadText(c, c.RequiredObject("text_config"), Names.WithPrefix("language_model."), Name, "llama4");
}
