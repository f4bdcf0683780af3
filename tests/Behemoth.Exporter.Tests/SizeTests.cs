using Behemoth.Exporter.Export;
using Behemoth.Exporter.Pruning;
using Behemoth.Formats.Architectures;
using Behemoth.Package;
using Behemoth.Tests;

namespace Behemoth.Exporter.Tests;

/// <summary>
/// The planner and the exporter share one storage rule (<see cref="WeightStorage"/>): the bytes a device plan
/// predicts for a profile are the bytes the exported package's manifest records for it (<c>weight_bytes</c>),
/// to the byte. Alignment padding sits between tensors in the weight file and is referenced by no profile.
/// </summary>
public sealed class SizeTests
{
    private static string Model(string name) =>
        name == "behemoth-nano" ? Path.Combine(TestPaths.RepoRoot, "models", "behemoth-nano") : TestPaths.Golden(name);

    [Theory]
    [InlineData("mixtral", WeightType.Fp32, MoeForm.Fused)]
    [InlineData("mixtral", WeightType.Int4, MoeForm.Fused)]
    [InlineData("mixtral", WeightType.Int4, MoeForm.Decomposed)]
    [InlineData("mixtral", WeightType.Fp16, MoeForm.Fused)]
    [InlineData("mixtral", WeightType.Int8, MoeForm.Fused)]
    [InlineData("llama4", WeightType.Fp32, MoeForm.Fused)]
    [InlineData("llama4", WeightType.Int4, MoeForm.Fused)]
    [InlineData("behemoth-nano", WeightType.Fp32, MoeForm.Fused)]
    [InlineData("behemoth-nano", WeightType.Int4, MoeForm.Fused)]
    [InlineData("behemoth-nano", WeightType.Fp16, MoeForm.Fused)]
    public void The_planned_bytes_of_each_profile_are_the_exported_weight_bytes(string name, WeightType quant, MoeForm form)
    {
        string dir = Model(name);
        var config = ArchitectureRegistry.ReadDecoder(ArchitectureRegistry.LoadConfig(dir));
        // a MaxContext below the model's positions: the RoPE tables the plan counts are the export's, not a default's
        var options = new ExportOptions { Quant = quant, BlockSize = 16, Moe = form, MaxContext = 1000 };
        var size = new SizeModel(config, options);
        var moeLayers = config.Layers.Where(l => l.FeedForward == Formats.Config.FeedForwardKind.Moe).Select(l => l.Index).ToArray();
        int experts = config.Moe.NumExperts, topK = config.Moe.TopK;
        var random = new Random(7);
        var scores = moeLayers.ToDictionary(l => l, _ => Enumerable.Range(0, experts).Select(_ => random.NextDouble()).ToArray());

        // a device that fits a bit more than half of the experts, after the non-expert weights and its KV cache
        int budgetExperts = Math.Max(topK * moeLayers.Length, moeLayers.Length * experts / 2 + 1);
        var device = new DeviceSpec
        {
            Name = "half", Quantization = quant.ToManifestName(), ContextTokens = 256, Domains = new Dictionary<string, double> { ["d"] = 1 },
            MemoryBytes = size.KvCache(256) + size.NonExpert + budgetExperts * size.PerExpert + size.PerExpert / 2,
        };
        var plan = PruningPlanner.ForDevice(device, scores, topK, size);
        Assert.Equal(budgetExperts, plan.ExpertsKept);
        Assert.True(plan.ExpertsKept < experts * moeLayers.Length, "the plan prunes");

        using var temp = new TempDirectory();
        var profile = new ProfileSpec("half", "the device's plan", plan.Kept);
        var result = PackageExporter.Export(dir, temp.File("pkg"), options with { Profiles = [profile] }, overwrite: false);
        var manifest = PackageReader.ReadManifest(temp.File("pkg"));

        long full = manifest.Profiles["full"].WeightBytes!.Value, half = manifest.Profiles["half"].WeightBytes!.Value;
        Assert.Equal(size.Profile((long)experts * moeLayers.Length), full);
        Assert.Equal(plan.WeightBytes, half);
        Assert.Equal(size.Profile(plan.ExpertsKept), half);
        // the weight file holds both profiles' tensors once, each aligned: padding is the file's, not a profile's
        Assert.True(result.WeightBytes >= full, $"{result.WeightBytes} bytes written, {full} referenced by the full profile");
    }

    [Fact]
    public void The_rule_stores_int4_as_packed_nibbles_with_a_float32_scale_per_block()
    {
        var int4 = new WeightStorage(WeightType.Int4, 32);
        Assert.Equal(10L * 2 * (16 + 4), int4.Linear(10, 64));            // 2 blocks per row: 16 packed bytes and a float32 scale each
        Assert.Equal(10L * 3 * (16 + 4), int4.Linear(10, 65));            // a partial last block is stored whole
        Assert.Equal(10L * 2 * (32 + 4), new WeightStorage(WeightType.Int8, 32).Linear(10, 64));
        Assert.Equal(10L * 64 * 2, new WeightStorage(WeightType.Fp16).Linear(10, 64));
        Assert.Equal(10L * 64 * 4, new WeightStorage(WeightType.Int4, 32, Simulated: true).Linear(10, 64));
        Assert.Equal(100L * 64 * 2, int4.Embeddings(100, 64));             // quantized packages keep an fp16 embedding table
        Assert.Equal(100L * 64 * 4, new WeightStorage(WeightType.Fp32).Embeddings(100, 64));
    }
}
