using Behemoth.Formats.Config;
using Behemoth.Formats.Description;

namespace Behemoth.Formats.Architectures;

/// <summary>
/// An architecture Behemoth can size (inspect, memory planning) but not run. Subclasses list the tensors
/// of the Hugging Face checkpoint layout from config.json.
/// </summary>
public abstract class DescribedOnlyArchitecture : Architecture
{
    public override bool IsRunnable => false;

    public override ModelDescription Describe(ConfigReader c)
    {
        int layers = c.RequiredInt("num_hidden_layers");
        if (layers > 10_000 || Experts(c) > 65_536)
            throw c.Error("num_hidden_layers", $"{layers} layers × {Experts(c)} experts is beyond any real model");
        int hidden = c.RequiredInt("hidden_size");
        int vocab = c.RequiredInt("vocab_size");
        var tensors = new List<TensorSpec> { new("model.embed_tokens.weight", [vocab, hidden], TensorRole.Embedding) };
        int moeLayers = 0;
        for (int l = 0; l < layers; l++)
        {
            tensors.Add(new($"model.layers.{l}.input_layernorm.weight", [hidden], TensorRole.Norm, l));
            tensors.Add(new($"model.layers.{l}.post_attention_layernorm.weight", [hidden], TensorRole.Norm, l));
            if (AddLayer(c, l, hidden, tensors)) moeLayers++;
        }
        tensors.Add(new("model.norm.weight", [hidden], TensorRole.Norm));
        if (!c.Bool("tie_word_embeddings", false))
            tensors.Add(new("lm_head.weight", [vocab, hidden], TensorRole.LmHead));
        AddExtra(c, tensors);
        return new ModelDescription(Name, c.String("model_type", ""), layers, moeLayers, Experts(c), c.RequiredInt(TopKField), tensors, runnable: false);
    }

    protected virtual string TopKField => "num_experts_per_tok";

    protected abstract int Experts(ConfigReader c);

    /// <summary>Adds layer <paramref name="l"/>'s attention and feed-forward tensors; returns whether it is an MoE layer.</summary>
    protected abstract bool AddLayer(ConfigReader c, int l, int hidden, List<TensorSpec> tensors);

    protected virtual void AddExtra(ConfigReader c, List<TensorSpec> tensors) { }

    protected static void AddSwiGlu(List<TensorSpec> t, string prefix, int inter, int hidden, TensorRole role, int layer, int expert = -1,
        string gate = "gate_proj", string up = "up_proj", string down = "down_proj")
    {
        int count = expert >= 0 ? 1 : 0;
        t.Add(new($"{prefix}.{gate}.weight", [inter, hidden], role, layer, expert, count));
        t.Add(new($"{prefix}.{up}.weight", [inter, hidden], role, layer, expert, count));
        t.Add(new($"{prefix}.{down}.weight", [hidden, inter], role, layer, expert, count));
    }

    protected static void AddAttention(List<TensorSpec> t, int l, int hidden, int qDim, int kvDim, bool bias)
    {
        string p = $"model.layers.{l}.self_attn";
        t.Add(new($"{p}.q_proj.weight", [qDim, hidden], TensorRole.Attention, l));
        t.Add(new($"{p}.k_proj.weight", [kvDim, hidden], TensorRole.Attention, l));
        t.Add(new($"{p}.v_proj.weight", [kvDim, hidden], TensorRole.Attention, l));
        t.Add(new($"{p}.o_proj.weight", [hidden, qDim], TensorRole.Attention, l));
        if (!bias) return;
        t.Add(new($"{p}.q_proj.bias", [qDim], TensorRole.AttentionBias, l));
        t.Add(new($"{p}.k_proj.bias", [kvDim], TensorRole.AttentionBias, l));
        t.Add(new($"{p}.v_proj.bias", [kvDim], TensorRole.AttentionBias, l));
        t.Add(new($"{p}.o_proj.bias", [hidden], TensorRole.AttentionBias, l));
    }

    protected static (int QDim, int KvDim) HeadDims(ConfigReader c, int hidden)
    {
        int heads = c.RequiredInt("num_attention_heads");
        int kv = c.Int("num_key_value_heads", heads, min: 1);
        int headDim = c.OptionalInt("head_dim", min: 1) ?? hidden / heads;
        return (heads * headDim, kv * headDim);
    }
}

/// <summary><c>DeepseekV2ForCausalLM</c>: multi-head latent attention, dense first layers, routed + shared experts.</summary>
public class DeepseekV2 : DescribedOnlyArchitecture
{
    public override string Name => "DeepseekV2ForCausalLM";

    /// <summary>Whether each router carries <c>e_score_correction_bias</c> (DeepSeek-V3's selection-only bias).</summary>
    protected virtual bool HasScoreCorrectionBias => false;

    protected override int Experts(ConfigReader c) => c.RequiredInt("n_routed_experts");

    protected override bool AddLayer(ConfigReader c, int l, int hidden, List<TensorSpec> t)
    {
        int heads = c.RequiredInt("num_attention_heads");
        int nope = c.RequiredInt("qk_nope_head_dim"), rope = c.RequiredInt("qk_rope_head_dim"), v = c.RequiredInt("v_head_dim");
        int kvRank = c.RequiredInt("kv_lora_rank");
        string p = $"model.layers.{l}.self_attn";
        if (c.OptionalInt("q_lora_rank", min: 1) is int qRank)
        {
            t.Add(new($"{p}.q_a_proj.weight", [qRank, hidden], TensorRole.Attention, l));
            t.Add(new($"{p}.q_a_layernorm.weight", [qRank], TensorRole.Norm, l));
            t.Add(new($"{p}.q_b_proj.weight", [heads * (nope + rope), qRank], TensorRole.Attention, l));
        }
        else
            t.Add(new($"{p}.q_proj.weight", [heads * (nope + rope), hidden], TensorRole.Attention, l));
        t.Add(new($"{p}.kv_a_proj_with_mqa.weight", [kvRank + rope, hidden], TensorRole.Attention, l));
        t.Add(new($"{p}.kv_a_layernorm.weight", [kvRank], TensorRole.Norm, l));
        t.Add(new($"{p}.kv_b_proj.weight", [heads * (nope + v), kvRank], TensorRole.Attention, l));
        t.Add(new($"{p}.o_proj.weight", [hidden, heads * v], TensorRole.Attention, l));

        string mlp = $"model.layers.{l}.mlp";
        int experts = Experts(c);
        bool moe = experts > 0 && l >= c.Int("first_k_dense_replace", 0) && l % c.Int("moe_layer_freq", 1, min: 1) == 0;
        if (!moe)
        {
            AddSwiGlu(t, mlp, c.RequiredInt("intermediate_size"), hidden, TensorRole.DenseMlp, l);
            return false;
        }
        int inter = c.RequiredInt("moe_intermediate_size");
        t.Add(new($"{mlp}.gate.weight", [experts, hidden], TensorRole.Router, l));
        if (HasScoreCorrectionBias)
            t.Add(new($"{mlp}.gate.e_score_correction_bias", [experts], TensorRole.Router, l));
        for (int e = 0; e < experts; e++)
            AddSwiGlu(t, $"{mlp}.experts.{e}", inter, hidden, TensorRole.RoutedExperts, l, e);
        int shared = c.Int("n_shared_experts", 0);
        if (shared > 0)
            AddSwiGlu(t, $"{mlp}.shared_experts", inter * shared, hidden, TensorRole.SharedExpert, l);
        return true;
    }
}

/// <summary>
/// <c>DeepseekV3ForCausalLM</c> (DeepSeek-V3/R1, Moonlight, Kimi): the DeepSeek-V2 layout plus a per-router score
/// correction bias. The multi-token-prediction layer (<c>num_nextn_predict_layers</c>) is not counted: Hugging Face
/// checkpoints of the model run without it.
/// </summary>
public sealed class DeepseekV3 : DeepseekV2
{
    public override string Name => "DeepseekV3ForCausalLM";

    protected override bool HasScoreCorrectionBias => true;
}

/// <summary><c>PhiMoEForCausalLM</c> (Phi-3.5-MoE): biased attention, LayerNorm with bias, Mixtral-style experts.</summary>
public sealed class PhiMoe : DescribedOnlyArchitecture
{
    public override string Name => "PhiMoEForCausalLM";

    protected override int Experts(ConfigReader c) => c.Int("num_local_experts", 16, min: 1);

    protected override bool AddLayer(ConfigReader c, int l, int hidden, List<TensorSpec> t)
    {
        var (q, kv) = HeadDims(c, hidden);
        AddAttention(t, l, hidden, q, kv, c.Bool("attention_bias", false));
        // LayerNorm (not RMSNorm): each norm also has a bias.
        t.Add(new($"model.layers.{l}.input_layernorm.bias", [hidden], TensorRole.Norm, l));
        t.Add(new($"model.layers.{l}.post_attention_layernorm.bias", [hidden], TensorRole.Norm, l));
        string moe = $"model.layers.{l}.block_sparse_moe";
        t.Add(new($"{moe}.gate.weight", [Experts(c), hidden], TensorRole.Router, l));
        for (int e = 0; e < Experts(c); e++)
            AddSwiGlu(t, $"{moe}.experts.{e}", c.RequiredInt("intermediate_size"), hidden, TensorRole.RoutedExperts, l, e, "w1", "w3", "w2");
        return true;
    }

    protected override void AddExtra(ConfigReader c, List<TensorSpec> t)
    {
        int hidden = c.RequiredInt("hidden_size");
        t.Add(new("model.norm.bias", [hidden], TensorRole.Norm));
        if (c.Bool("lm_head_bias", false))
            t.Add(new("lm_head.bias", [c.RequiredInt("vocab_size")], TensorRole.AttentionBias));
    }
}

/// <summary><c>GptOssForCausalLM</c>: biased attention with per-head sinks, fused experts with biases, a biased router.</summary>
public sealed class GptOss : DescribedOnlyArchitecture
{
    public override string Name => "GptOssForCausalLM";

    protected override int Experts(ConfigReader c) => c.RequiredInt("num_local_experts");

    protected override bool AddLayer(ConfigReader c, int l, int hidden, List<TensorSpec> t)
    {
        var (q, kv) = HeadDims(c, hidden);
        AddAttention(t, l, hidden, q, kv, c.Bool("attention_bias", true));
        t.Add(new($"model.layers.{l}.self_attn.sinks", [c.RequiredInt("num_attention_heads")], TensorRole.AttentionBias, l));
        int e = Experts(c), inter = c.RequiredInt("intermediate_size");
        string mlp = $"model.layers.{l}.mlp";
        t.Add(new($"{mlp}.router.weight", [e, hidden], TensorRole.Router, l));
        t.Add(new($"{mlp}.router.bias", [e], TensorRole.Router, l));
        t.Add(new($"{mlp}.experts.gate_up_proj", [e, hidden, 2 * inter], TensorRole.RoutedExperts, l, ExpertCount: e));
        t.Add(new($"{mlp}.experts.gate_up_proj_bias", [e, 2 * inter], TensorRole.RoutedExperts, l, ExpertCount: e));
        t.Add(new($"{mlp}.experts.down_proj", [e, inter, hidden], TensorRole.RoutedExperts, l, ExpertCount: e));
        t.Add(new($"{mlp}.experts.down_proj_bias", [e, hidden], TensorRole.RoutedExperts, l, ExpertCount: e));
        return true;
    }
}
