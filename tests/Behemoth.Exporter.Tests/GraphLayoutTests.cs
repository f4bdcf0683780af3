using Behemoth.Exporter.Export;
using Behemoth.Exporter.Onnx.Proto;
using Behemoth.Tests;

namespace Behemoth.Exporter.Tests;

/// <summary>The graph's layout: nodes named by module path, each name once.</summary>
public sealed class GraphLayoutTests
{
    public static TheoryData<string, MoeForm, QuantKind> Graphs()
    {
        var data = new TheoryData<string, MoeForm, QuantKind>();
        foreach (var name in new[] { "mixtral", "qwen2_moe", "qwen3_moe", "olmoe", "llama4" })
            foreach (var form in new[] { MoeForm.Fused, MoeForm.Decomposed })
                data.Add(TestPaths.Golden(name), form, QuantKind.Fp32);
        data.Add(TestPaths.Golden("llama4"), MoeForm.Fused, QuantKind.Int4);
        data.Add(TestPaths.Golden("olmoe"), MoeForm.Fused, QuantKind.Fp16);
        data.Add(TestPaths.Variant("llama4_conditional_bf16"), MoeForm.Fused, QuantKind.Fp32);
        return data;
    }

    [Theory]
    [MemberData(nameof(Graphs))]
    public void Every_node_name_is_a_unique_module_path(string modelDir, MoeForm form, QuantKind quant)
    {
        using var temp = new TempDirectory();
        PackageExporter.Export(modelDir, temp.File("pkg"), new ExportOptions { Moe = form, Quant = quant, BlockSize = 16 }, overwrite: false);
        var graph = ModelProto.Parser.ParseFrom(File.ReadAllBytes(Path.Combine(temp.File("pkg"), "full.onnx"))).Graph;
        var names = graph.Node.Select(n => n.Name).ToArray();
        Assert.All(names, n => Assert.Matches(@"^(/[A-Za-z0-9_.]+)+$", n));
        var duplicates = names.GroupBy(n => n).Where(g => g.Count() > 1).Select(g => g.Key).ToArray();
        Assert.True(duplicates.Length == 0, "duplicate node names: " + string.Join(", ", duplicates.Take(5)));

        // the modules of the decoder, as Hugging Face names them
        Assert.Contains(names, n => n.StartsWith("/model/embed_tokens/", StringComparison.Ordinal));
        Assert.Contains(names, n => n.StartsWith("/model/layers.0/input_layernorm/", StringComparison.Ordinal));
        Assert.Contains(names, n => n.StartsWith("/model/layers.0/attn/q_proj/", StringComparison.Ordinal));
        Assert.Contains(names, n => n.StartsWith("/model/layers.1/attn/o_proj/", StringComparison.Ordinal));
        Assert.Contains(names, n => n.StartsWith("/model/norm/", StringComparison.Ordinal));
        Assert.Contains(names, n => n.StartsWith("/lm_head/", StringComparison.Ordinal));
        Assert.Contains(names, n => n.Contains("/moe/router/", StringComparison.Ordinal));
        Assert.Contains(names, n => n.Contains("/moe/experts/", StringComparison.Ordinal));
        // the graph's I/O names are onnxruntime-genai's, whatever the node names
        Assert.Equal(["input_ids", "attention_mask", "position_ids"], graph.Input.Take(3).Select(i => i.Name));
        Assert.Equal("logits", graph.Output[0].Name);
        Assert.Contains(graph.Output, o => o.Name == "present.0.key");
    }
}
