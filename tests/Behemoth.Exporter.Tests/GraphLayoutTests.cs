using System.Text.Json;
using System.Text.Json.Nodes;
using Behemoth.Exporter.Export;
using Behemoth.Exporter.Onnx.Proto;
using Behemoth.Formats.Errors;
using Behemoth.Package;
using Behemoth.Reference;
using Behemoth.Runtime;
using Behemoth.Tests;

namespace Behemoth.Exporter.Tests;

/// <summary>
/// The graph's layout: nodes named by module path, each name once; and <see cref="ExportOptions.Layers"/>, which
/// exports the first N decoder layers as a model of its own.
/// </summary>
public sealed class GraphLayoutTests
{
    public static TheoryData<string, MoeForm, WeightType> Graphs()
    {
        var data = new TheoryData<string, MoeForm, WeightType>();
        foreach (var name in new[] { "mixtral", "qwen2_moe", "qwen3_moe", "olmoe", "llama4" })
            foreach (var form in new[] { MoeForm.Fused, MoeForm.Decomposed })
                data.Add(TestPaths.Golden(name), form, WeightType.Fp32);
        data.Add(TestPaths.Golden("llama4"), MoeForm.Fused, WeightType.Int4);
        data.Add(TestPaths.Golden("olmoe"), MoeForm.Fused, WeightType.Fp16);
        data.Add(TestPaths.Variant("llama4_conditional_bf16"), MoeForm.Fused, WeightType.Fp32);
        return data;
    }

    [Theory]
    [MemberData(nameof(Graphs))]
    public void Every_node_name_is_a_unique_module_path(string modelDir, MoeForm form, WeightType quant)
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

    [Fact]
    public void Layers_exports_the_first_layers_as_a_model_the_reference_engine_agrees_with()
    {
        string golden = TestPaths.Golden("mixtral");   // 2 layers
        using var temp = new TempDirectory();
        PackageExporter.Export(golden, temp.File("one"), new ExportOptions { Layers = 1 }, overwrite: false);

        // the package describes one layer throughout
        var manifest = PackageReader.ReadManifest(temp.File("one"));
        Assert.Equal(1, manifest.Model.NumLayers);
        Assert.Single(manifest.KvCache!);
        Assert.Equal([0], manifest.Experts.Select(l => l.Layer));
        var genai = JsonNode.Parse(File.ReadAllText(Path.Combine(temp.File("one"), "genai_config.json")))!;
        Assert.Equal(1, genai["model"]!["decoder"]!["num_hidden_layers"]!.GetValue<int>());
        var graph = ModelProto.Parser.ParseFrom(File.ReadAllBytes(Path.Combine(temp.File("one"), "full.onnx"))).Graph;
        Assert.DoesNotContain(graph.Input, i => i.Name == "past_key_values.1.key");
        Assert.DoesNotContain(graph.Node, n => n.Name.StartsWith("/model/layers.1/", StringComparison.Ordinal));

        // the same checkpoint, its config cut to one layer, through the reference engine
        string truncated = temp.File("ckpt");
        Directory.CreateDirectory(truncated);
        File.Copy(Path.Combine(golden, "model.safetensors"), Path.Combine(truncated, "model.safetensors"));
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(golden, "config.json")))!;
        config["num_hidden_layers"] = 1;
        File.WriteAllText(Path.Combine(truncated, "config.json"), config.ToJsonString());
        int[] ids = JsonSerializer.Deserialize<int[]>(File.ReadAllText(Path.Combine(golden, "input_ids.json")))!;
        float[] expected;
        using (var reference = ReferenceModel.Load(truncated)) expected = reference.Forward(ids);

        float[] one, full;
        using (var session = DecoderSession.Open(temp.File("one"))) one = session.Forward(ids, session.NewCache());
        Assert.Equal(expected.Length, one.Length);
        Assert.True(MaxDiff(expected, one) <= 1e-4, $"one layer: max |diff| {MaxDiff(expected, one):E3} against the reference engine");

        PackageExporter.Export(golden, temp.File("full"), new ExportOptions(), overwrite: false);
        using (var session = DecoderSession.Open(temp.File("full"))) full = session.Forward(ids, session.NewCache());
        Assert.True(MaxDiff(full, one) > 1e-3, "the one-layer model computes the same logits as the full one");
    }

    [Theory]
    [InlineData(0)]
    [InlineData(3)]
    public void Layers_outside_the_model_are_refused(int layers)
    {
        using var temp = new TempDirectory();
        var e = Assert.Throws<BehemothException>(() =>
            PackageExporter.Export(TestPaths.Golden("mixtral"), temp.File("pkg"), new ExportOptions { Layers = layers }, overwrite: false));
        Assert.Contains($"--layers {layers}", e.Message);
        Assert.Contains("1 to 2", e.Message);
        Assert.DoesNotContain('\n', e.Message);
        Assert.False(Directory.Exists(temp.File("pkg")));
    }

    private static double MaxDiff(float[] a, float[] b) => a.Zip(b, (x, y) => (double)Math.Abs(x - y)).Max();
}
