using System.Text.Json;
using Behemoth.Package;

namespace Behemoth.Exporter.Tests;

/// <summary>The typed contract values keep the manifest's strings, so packages written before them still load.</summary>
public sealed class ContractKindsTests
{
    [Theory]
    [InlineData(AttentionKind.Full, "full")]
    [InlineData(AttentionKind.Sliding, "sliding")]
    [InlineData(AttentionKind.Chunked, "chunked")]
    public void Attention_kinds_read_and_write_the_manifest_strings(AttentionKind kind, string name)
    {
        string json = JsonSerializer.Serialize(new LayerKvCache(3, kind, 8, false), PackageReader.Json);
        Assert.Contains($"\"attention\": \"{name}\"", json);
        Assert.Equal(kind, JsonSerializer.Deserialize<LayerKvCache>(json, PackageReader.Json)!.Attention);
        Assert.Equal(name, kind.ToManifestName());
    }

    [Theory]
    [InlineData(WeightType.Fp32, "fp32")]
    [InlineData(WeightType.Fp16, "fp16")]
    [InlineData(WeightType.Int8, "int8")]
    [InlineData(WeightType.Int4, "int4")]
    public void Weight_types_read_and_write_the_manifest_strings(WeightType type, string name)
    {
        string json = JsonSerializer.Serialize(new QuantizationInfo(type, 32, ["routers"]), PackageReader.Json);
        Assert.Contains($"\"weights\": \"{name}\"", json);
        Assert.Equal(type, JsonSerializer.Deserialize<QuantizationInfo>(json, PackageReader.Json)!.Weights);
        Assert.Equal(name, type.ToManifestName());
    }

    [Theory]
    [InlineData(MoeForm.Fused, "fused")]
    [InlineData(MoeForm.Decomposed, "decomposed")]
    public void Moe_forms_use_the_manifest_strings(MoeForm form, string name)
    {
        Assert.Equal($"\"{name}\"", JsonSerializer.Serialize(form, PackageReader.Json));
        Assert.Equal(form, JsonSerializer.Deserialize<MoeForm>($"\"{name}\"", PackageReader.Json));
        Assert.Equal(name, form.ToManifestName());
    }

    [Fact]
    public void An_unknown_attention_kind_does_not_parse()
    {
        Assert.Throws<JsonException>(() => JsonSerializer.Deserialize<LayerKvCache>(
            """{"layer": 0, "attention": "diagonal", "window": null, "shared_buffer": false}""", PackageReader.Json));
    }
}
