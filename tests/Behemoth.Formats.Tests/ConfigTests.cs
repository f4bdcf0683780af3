using System.Text;
using System.Text.Json.Nodes;
using Behemoth.Formats.Architectures;
using Behemoth.Formats.Config;
using Behemoth.Formats.Errors;
using Behemoth.Tests;
using Behemoth.Package;

namespace Behemoth.Formats.Tests;

public sealed class ConfigTests
{
    private static JsonObject Golden(string name) =>
        JsonNode.Parse(File.ReadAllText(Path.Combine(TestPaths.Golden(name), "config.json")))!.AsObject();

    private static ConfigReader Reader(JsonObject json) =>
        ConfigReader.Parse("test/config.json", Encoding.UTF8.GetBytes(json.ToJsonString()));

    private static ModelConfigException Refused(JsonObject json) =>
        Assert.Throws<ModelConfigException>(() => ArchitectureRegistry.ReadDecoder(Reader(json)));

    [Fact]
    public void Missing_required_field_is_named()
    {
        var json = Golden("mixtral");
        json.Remove("hidden_size");
        var e = Refused(json);
        Assert.Equal("hidden_size", e.Field);
        Assert.Equal("test/config.json: field 'hidden_size': required field is missing", e.Message);
    }

    [Theory]
    [InlineData("hidden_size", "\"64\"", "expected an integer, found string")]
    [InlineData("num_experts_per_tok", "2.5", "expected an integer, found number")]
    [InlineData("rms_norm_eps", "\"small\"", "expected a number")]
    [InlineData("tie_word_embeddings", "1", "expected true or false")]
    [InlineData("num_local_experts", "0", "must be at least 1")]
    [InlineData("num_experts_per_tok", "9", "must not exceed the number of experts (8)")]
    [InlineData("num_key_value_heads", "3", "must divide num_attention_heads (4)")]
    public void Wrong_types_and_values_are_explained(string field, string value, string expected)
    {
        var json = Golden("mixtral");
        json[field] = JsonNode.Parse(value);
        var e = Refused(json);
        Assert.Equal(field, e.Field);
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void Nested_text_config_errors_carry_the_dotted_path()
    {
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(TestPaths.Variant("llama4_conditional_bf16"), "config.json")))!.AsObject();
        json["text_config"]!.AsObject().Remove("vocab_size");
        Assert.Equal("text_config.vocab_size", Refused(json).Field);
    }

    [Fact]
    public void Unknown_architecture_lists_the_supported_ones()
    {
        var json = Golden("mixtral");
        json["architectures"] = new JsonArray("FalconForCausalLM");
        var e = Assert.Throws<ModelConfigException>(() => ArchitectureRegistry.Describe(Reader(json)));
        Assert.Contains("unsupported architecture 'FalconForCausalLM'", e.Message);
        foreach (var name in new[] { "MixtralForCausalLM", "Qwen2MoeForCausalLM", "Qwen3MoeForCausalLM", "OlmoeForCausalLM", "Llama4ForCausalLM", "Llama4ForConditionalGeneration" })
            Assert.Contains(name, e.Message);
    }

    [Fact]
    public void Inspect_only_architecture_is_refused_by_the_engine_config()
    {
        var reader = ConfigReader.Load(TestPaths.Config("gpt-oss-20b.reconstructed.json"));
        var e = Assert.Throws<ModelConfigException>(() => ArchitectureRegistry.ReadDecoder(reader));
        Assert.Contains("can be inspected but not run", e.Message);
    }

    [Fact]
    public void Invalid_json_is_a_config_error()
    {
        var e = Assert.Throws<ModelConfigException>(() => ConfigReader.Parse("x/config.json", "{\"a\": "u8.ToArray()));
        Assert.StartsWith("x/config.json: not valid JSON", e.Message);
    }

    [Fact]
    public void Llama4_defaults_follow_the_hugging_face_config_class()
    {
        var json = Golden("llama4");
        foreach (var key in new[] { "no_rope_layers", "no_rope_layer_interval", "layer_types", "moe_layers", "head_dim" }) json.Remove(key);
        json["num_hidden_layers"] = 8;
        json["interleave_moe_layer_step"] = 2;
        json["hidden_size"] = 1024; // head_dim defaults to 128, not hidden / heads
        var c = ArchitectureRegistry.ReadDecoder(Reader(json));
        Assert.Equal(128, c.HeadDim);
        Assert.Equal([true, true, true, false, true, true, true, false], c.Layers.Select(l => l.UseRope));
        Assert.Equal([1, 3, 5, 7], c.Layers.Where(l => l.FeedForward == FeedForwardKind.Moe).Select(l => l.Index));
        Assert.All(c.Layers, l => Assert.Equal(l.UseRope ? AttentionKind.Chunked : AttentionKind.Full, l.Attention));
        Assert.All(c.Layers, l => Assert.Equal(!l.UseRope, l.TemperatureTuning));
    }

    [Fact]
    public void Qwen2_moe_sliding_layers_follow_its_config_class()
    {
        var json = Golden("qwen2_moe");
        json.Remove("layer_types");
        json["num_hidden_layers"] = 6;
        json["use_sliding_window"] = true;
        json["sliding_window"] = 5;
        json["max_window_layers"] = 4;
        var c = ArchitectureRegistry.ReadDecoder(Reader(json));
        Assert.Equal([true, false, true, false, false, false], c.Layers.Select(l => l.Attention == AttentionKind.Sliding));
    }

    [Fact]
    public void Llama3_rope_scales_long_wavelengths_only()
    {
        var rope = new RopeConfig("llama3", 500000, Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositions: 8192);
        var plain = (rope with { Type = "default" }).InverseFrequencies(128);
        var scaled = rope.InverseFrequencies(128);
        Assert.Equal(plain[0], scaled[0]);                              // high frequency: unchanged
        Assert.Equal(plain[^1] / 8, scaled[^1], 15);                    // low frequency: divided by factor
        Assert.All(plain.Zip(scaled), p => Assert.InRange(p.Second, p.First / 8 * (1 - 1e-12), p.First * (1 + 1e-12)));
        Assert.Throws<ModelConfigException>(() => (rope with { Type = "yarn" }).EnsureSupported("c.json"));
    }
}
