using System.Security.Cryptography;
using System.Text.Json;
using Behemoth.Exporter.Export;
using Behemoth.Formats.Errors;
using Behemoth.Package;
using Behemoth.Runtime;
using Behemoth.Tests;

namespace Behemoth.Exporter.Tests;

/// <summary>The package on disk: what the manifest promises, and refusal of tampered, truncated or partial packages.</summary>
public sealed class PackageTests : IDisposable
{
    private readonly TempDirectory _temp = new();
    private readonly string _package;

    public PackageTests()
    {
        _package = _temp.File("pkg");
        PackageExporter.Export(TestPaths.Golden("qwen2_moe"), _package, new ExportOptions(), overwrite: false);
    }

    public void Dispose() => _temp.Dispose();

    [Fact]
    public void Manifest_lists_every_file_with_its_size_and_sha256()
    {
        var manifest = PackageReader.ReadManifest(_package);
        var onDisk = Directory.GetFiles(_package).Select(Path.GetFileName).Where(f => f != PackageManifest.FileName).Order().ToArray();
        Assert.Equal(onDisk, manifest.Files.Keys.Order().ToArray());
        foreach (var (name, entry) in manifest.Files)
        {
            byte[] bytes = File.ReadAllBytes(Path.Combine(_package, name));
            Assert.Equal(entry.Bytes, bytes.Length);
            Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(bytes)), entry.Sha256);
        }
        Assert.Equal(WeightType.Fp32, manifest.Quantization.Weights);
        Assert.Equal("Qwen2MoeForCausalLM", manifest.Architecture);
        var full = manifest.Profiles[PackageExporter.FullProfile];
        Assert.Equal(manifest.Experts.Select(l => (l.Layer, string.Join(',', l.ExpertIds))), full.Experts.Select(l => (l.Layer, string.Join(',', l.ExpertIds))));
        Assert.All(manifest.Experts, l => Assert.Equal(Enumerable.Range(0, 4), l.ExpertIds));
    }

    [Fact]
    public void Genai_config_names_the_graph_and_its_cache_inputs()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(_package, "genai_config.json")));
        var decoder = doc.RootElement.GetProperty("model").GetProperty("decoder");
        Assert.Equal("full.onnx", decoder.GetProperty("filename").GetString());
        Assert.Equal("past_key_values.%d.key", decoder.GetProperty("inputs").GetProperty("past_key_names").GetString());
        Assert.Equal("present.%d.value", decoder.GetProperty("outputs").GetProperty("present_value_names").GetString());
        Assert.True(File.Exists(Path.Combine(_package, decoder.GetProperty("filename").GetString()!)));
    }

    [Fact]
    public void Genai_config_has_no_nulls_even_for_a_model_without_bos()
    {
        // onnxruntime-genai refuses a null where it expects a number (OLMoE has no bos_token_id)
        using var temp = new TempDirectory();
        PackageExporter.Export(TestPaths.Golden("olmoe"), temp.File("pkg"), new ExportOptions(), overwrite: false);
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(temp.File("pkg"), "genai_config.json")));
        static IEnumerable<JsonElement> All(JsonElement e) => e.ValueKind switch
        {
            JsonValueKind.Object => e.EnumerateObject().SelectMany(p => All(p.Value)).Prepend(e),
            JsonValueKind.Array => e.EnumerateArray().SelectMany(All).Prepend(e),
            _ => [e],
        };
        Assert.DoesNotContain(All(doc.RootElement), e => e.ValueKind == JsonValueKind.Null);
    }

    [Fact]
    public void A_flipped_byte_in_the_weights_is_refused_naming_the_file()
    {
        string weights = Path.Combine(_package, PackageExporter.WeightsFile);
        byte[] bytes = File.ReadAllBytes(weights);
        bytes[bytes.Length / 2] ^= 0x40;
        File.WriteAllBytes(weights, bytes);
        var e = Assert.Throws<PackageFormatException>(() => DecoderSession.Open(_package));
        Assert.Contains("weights.bin", e.Message);
        Assert.Contains("SHA-256", e.Message);
    }

    [Fact]
    public void A_truncated_graph_is_refused_naming_the_file()
    {
        string graph = Path.Combine(_package, "full.onnx");
        using (var f = new FileStream(graph, FileMode.Open)) f.SetLength(f.Length - 10);
        var e = Assert.Throws<PackageFormatException>(() => DecoderSession.Open(_package));
        Assert.Contains("full.onnx", e.Message);
        Assert.Contains("truncated", e.Message);
    }

    [Fact]
    public void Unknown_profiles_and_missing_manifests_are_refused()
    {
        var e = Assert.Throws<PackageFormatException>(() => DecoderSession.Open(_package, "glasses"));
        Assert.Contains("no profile 'glasses'", e.Message);
        Assert.Contains("full", e.Message);
        File.Delete(Path.Combine(_package, PackageManifest.FileName));
        e = Assert.Throws<PackageFormatException>(() => DecoderSession.Open(_package));
        Assert.Contains("manifest.json", e.Message);
    }

    [Fact]
    public void A_failed_export_leaves_no_output_and_keeps_an_existing_package()
    {
        // a checkpoint that lacks one tensor fails half-way through the layers
        string broken = _temp.File("broken");
        Directory.CreateDirectory(broken);
        string golden = TestPaths.Golden("qwen2_moe");
        File.Copy(Path.Combine(golden, "config.json"), Path.Combine(broken, "config.json"));
        List<SafetensorsWriter.Tensor> kept;
        using (var source = Behemoth.Formats.Safetensors.SafetensorsFile.Open(Path.Combine(golden, "model.safetensors")))
            kept = source.Tensors.Where(t => t.Name != "model.layers.1.mlp.experts.2.down_proj.weight").OrderBy(t => t.Offset)
                .Select(t => new SafetensorsWriter.Tensor(t.Name, t.DType.ToString().ToUpperInvariant(), t.Shape, source.GetBytes(t).ToArray())).ToList();
        File.WriteAllBytes(Path.Combine(broken, "model.safetensors"), SafetensorsWriter.Build(kept));

        string fresh = _temp.File("fresh");
        var e = Assert.Throws<CheckpointFormatException>(() => PackageExporter.Export(broken, fresh, new ExportOptions(), overwrite: false));
        Assert.Contains("model.layers.1.mlp.experts.2.down_proj.weight", e.Message);
        Assert.False(Directory.Exists(fresh));
        Assert.Empty(Directory.GetDirectories(_temp.Path, "fresh.partial-*"));

        string manifestBefore = File.ReadAllText(Path.Combine(_package, PackageManifest.FileName));
        Assert.Throws<CheckpointFormatException>(() => PackageExporter.Export(broken, _package, new ExportOptions(), overwrite: true));
        Assert.Equal(manifestBefore, File.ReadAllText(Path.Combine(_package, PackageManifest.FileName)));
        using var session = DecoderSession.Open(_package);
    }

    [Fact]
    public void An_existing_directory_is_not_replaced_without_force()
    {
        var e = Assert.Throws<BehemothException>(() => PackageExporter.Export(TestPaths.Golden("qwen2_moe"), _package, new ExportOptions(), overwrite: false));
        Assert.Contains("--force", e.Message);
        string other = _temp.File("not-a-package");
        Directory.CreateDirectory(other);
        File.WriteAllText(Path.Combine(other, "notes.txt"), "mine");
        e = Assert.Throws<BehemothException>(() => PackageExporter.Export(TestPaths.Golden("qwen2_moe"), other, new ExportOptions(), overwrite: true));
        Assert.Contains("not a Behemoth package", e.Message);
        Assert.Equal("mine", File.ReadAllText(Path.Combine(other, "notes.txt")));
    }
}
