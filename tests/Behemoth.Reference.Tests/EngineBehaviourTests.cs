using System.Text.Json.Nodes;
using Behemoth.Formats.Config;
using Behemoth.Formats.Errors;
using Behemoth.Reference.Blocks;
using Behemoth.Tests;
using Behemoth.Package;

namespace Behemoth.Reference.Tests;

public sealed class EngineBehaviourTests
{
    private static TempDirectory CopyOf(string source, Action<JsonObject>? editConfig = null)
    {
        var dir = new TempDirectory();
        foreach (var f in Directory.GetFiles(source))
            File.Copy(f, dir.File(Path.GetFileName(f)));
        if (editConfig is not null)
        {
            var json = JsonNode.Parse(File.ReadAllText(dir.File("config.json")))!.AsObject();
            editConfig(json);
            File.WriteAllText(dir.File("config.json"), json.ToJsonString());
        }
        return dir;
    }

    [Fact]
    public void Only_the_routed_experts_are_read()
    {
        using var model = ReferenceModel.Load(TestPaths.Golden("mixtral"));
        var trace = new List<List<Routing>>();
        model.Forward([5], trace);
        // One token, top-2 of 8 experts in each of 2 layers: 12 of 16 expert weight sets stay untouched,
        // and of the embedding only the token's row is read.
        Assert.Equal(2, trace.Count);
        Assert.All(trace, layer => Assert.Equal(2, layer.Count));
        long expertBytes = 3 * 16 * 64 * 4;
        long everything = model.Description.TotalParameters * 4;
        long unreadEmbedding = (512 - 1) * 64 * 4;
        Assert.Equal(everything - 12 * expertBytes - unreadEmbedding, model.BytesRead);
    }

    [Fact]
    public void Routing_weights_follow_the_architecture()
    {
        using var mixtral = ReferenceModel.Load(TestPaths.Golden("mixtral"));
        var trace = new List<List<Routing>>();
        mixtral.Forward([1, 2, 3], trace);
        foreach (var token in trace[0].GroupBy(r => r.Token))
            Assert.Equal(1.0, token.Sum(r => r.Weight), 5);          // renormalised softmax

        using var llama4 = ReferenceModel.Load(TestPaths.Golden("llama4"));
        trace.Clear();
        llama4.Forward([1, 2, 3], trace);
        Assert.All(trace.SelectMany(l => l), r => Assert.InRange(r.Weight, 0f, 1f)); // sigmoid scores
        Assert.All(trace, l => Assert.Equal(3, l.Count));                              // top-1
    }

    [Theory]
    [InlineData(AttentionKind.Chunked, 8, 9, 8, true)]
    [InlineData(AttentionKind.Chunked, 8, 8, 7, false)]   // first position of a chunk sees only its chunk
    [InlineData(AttentionKind.Chunked, 8, 15, 8, true)]
    [InlineData(AttentionKind.Sliding, 6, 10, 5, true)]   // window 6 includes the query itself
    [InlineData(AttentionKind.Sliding, 6, 10, 4, false)]
    [InlineData(AttentionKind.Full, 0, 10, 0, true)]
    [InlineData(AttentionKind.Full, 0, 3, 4, false)]      // causal
    public void Attention_masks(AttentionKind kind, int window, int query, int key, bool visible)
    {
        var layer = new LayerSpec(0, kind, window, true, QkNormKind.None, false, FeedForwardKind.Moe, 0);
        Assert.Equal(visible, Attention.Visible(layer, query, key));
    }

    [Fact]
    public void Unsupported_rope_scaling_is_refused_at_load()
    {
        using var dir = CopyOf(TestPaths.Golden("mixtral"), c => c["rope_scaling"] = new JsonObject { ["rope_type"] = "yarn", ["factor"] = 4 });
        var e = Assert.Throws<ModelConfigException>(() => ReferenceModel.Load(dir.Path));
        Assert.Contains("'yarn' is not supported (supported: default, linear, llama3)", e.Message);
        Assert.Equal("rope_scaling.rope_type", e.Field);
    }

    [Fact]
    public void Shape_mismatch_names_file_tensor_and_both_shapes()
    {
        using var dir = CopyOf(TestPaths.Golden("qwen3_moe"), c => c["moe_intermediate_size"] = 32);
        var e = Assert.Throws<CheckpointFormatException>(() => ReferenceModel.Load(dir.Path));
        Assert.Equal("model.layers.0.mlp.experts.0.gate_proj.weight", e.TensorName);
        Assert.Contains("expected shape [32, 64] from config.json, found [16, 64]", e.Message);
        Assert.Contains("model.safetensors", e.Message);
    }

    [Fact]
    public void Missing_tensor_is_named()
    {
        // Untying the embeddings of a tied checkpoint asks for an lm_head.weight the file does not have.
        using var dir = CopyOf(TestPaths.Variant("olmoe_clip_tied"), c => c["tie_word_embeddings"] = false);
        var e = Assert.Throws<CheckpointFormatException>(() => ReferenceModel.Load(dir.Path));
        Assert.Equal("lm_head.weight", e.TensorName);
        Assert.Contains("missing", e.Message);
    }

    [Fact]
    public void Unsupported_activation_and_out_of_range_tokens_are_refused()
    {
        using (var dir = CopyOf(TestPaths.Golden("olmoe"), c => c["hidden_act"] = "gelu"))
            Assert.Contains("activation 'gelu'", Assert.Throws<ModelConfigException>(() => ReferenceModel.Load(dir.Path)).Message);

        using var model = ReferenceModel.Load(TestPaths.Golden("olmoe"));
        var e = Assert.Throws<BehemothException>(() => model.Forward([1, 512]));
        Assert.Contains("token id 512 at position 1", e.Message);
    }

    [Fact]
    public void Prefix_logits_do_not_depend_on_later_tokens()
    {
        // Causality, including across Llama 4 chunk boundaries: logits of a prefix equal those of the full run.
        using var model = ReferenceModel.Load(TestPaths.Golden("llama4"));
        int[] ids = Enumerable.Range(0, 20).Select(i => (i * 37 + 11) % 512).ToArray();
        var full = model.Forward(ids);
        var prefix = model.Forward(ids.AsSpan(0, 13));
        Assert.Equal(prefix, full.AsSpan(0, prefix.Length).ToArray());
    }
}
