using Behemoth.Formats.Architectures;
using Behemoth.Formats.Config;
using Behemoth.Formats.Description;
using Behemoth.Tests;

namespace Behemoth.Formats.Tests;

public sealed class DescriptionTests
{
    private static ModelDescription Describe(string file) => ArchitectureRegistry.Describe(ConfigReader.Load(TestPaths.Config(file)));

    public static TheoryData<string> RealConfigs()
    {
        var data = new TheoryData<string>();
        foreach (var f in Directory.GetFiles(Path.Combine(TestPaths.Fixtures, "configs"), "*.json").Order())
            data.Add(Path.GetFileName(f));
        return data;
    }

    [Theory]
    [MemberData(nameof(RealConfigs))]
    public void Every_real_config_describes_cleanly(string file)
    {
        var d = Describe(file);
        Assert.True(d.TotalParameters > 1_000_000_000);
        Assert.InRange(d.ActiveParameters, d.TotalParameters / 20, d.TotalParameters / 2);
        Assert.True(d.Bytes(WeightPrecision.Int4) < d.Bytes(WeightPrecision.Int8));
        Assert.True(d.Bytes(WeightPrecision.Int8) < d.Bytes(WeightPrecision.Fp16));
        Assert.True(d.BytesPerExpert(WeightPrecision.Fp16) == 2 * d.ParametersPerExpert);
    }

    // Published figures (model cards), in billions. Active counts here include the embedding and lm_head
    // matrices, which some cards leave out, so they are compared within 2%.
    [Theory]
    [InlineData("Mixtral-8x7B-v0.1.json", 46.7, 12.9, 1)]
    [InlineData("Qwen3-30B-A3B.json", 30.5, 3.3, 1)]
    [InlineData("Qwen1.5-MoE-A2.7B.json", 14.3, 2.7, 1)]
    [InlineData("OLMoE-1B-7B-0924.transcribed.json", 6.9, 1.3, 1)]
    [InlineData("Phi-3.5-MoE-instruct.partial.json", 41.9, 6.6, 1)]
    [InlineData("DeepSeek-V2-Lite.json", 15.7, null, 1)]
    [InlineData("gpt-oss-20b.reconstructed.json", 20.9, null, 1)]
    [InlineData("DeepSeek-V3.transcribed.json", 671.0, 37.5, 0)]
    [InlineData("Llama-4-Scout-17B-16E.assembled.json", null, 17.0, 0)]
    public void Parameter_counts_match_published_figures(string file, double? totalB, double? activeB, int digits)
    {
        var d = Describe(file);
        if (totalB is double t) Assert.Equal(t, Math.Round(d.TotalParameters / 1e9, digits));
        if (activeB is double a) Assert.InRange(d.ActiveParameters / 1e9, a * 0.98, a * 1.02);
    }

    [Fact]
    public void Mixtral_expert_accounting_is_exact()
    {
        var d = Describe("Mixtral-8x7B-v0.1.json");
        Assert.Equal(3L * 4096 * 14336, d.ParametersPerExpert);
        Assert.Equal(32, d.MoeLayers);
        Assert.Equal(8, d.ExpertsPerLayer);
        Assert.Equal(2, d.TopK);
        Assert.Equal(d.TotalParameters - 32L * 6 * d.ParametersPerExpert, d.ActiveParameters);
        // int4: 4 bits + a 16-bit scale per 32 weights = 4.5 bits per weight.
        Assert.Equal(d.ParametersPerExpert * 9 / 16, d.BytesPerExpert(WeightPrecision.Int4));
    }

    [Fact]
    public void Golden_checkpoints_hold_exactly_the_described_tensors()
    {
        foreach (var name in new[] { "mixtral", "qwen2_moe", "qwen3_moe", "olmoe", "llama4" })
        {
            var d = ArchitectureRegistry.Describe(ArchitectureRegistry.LoadConfig(TestPaths.Golden(name)));
            using var checkpoint = Checkpoints.Checkpoint.Open(TestPaths.Golden(name));
            Assert.Equal(checkpoint.TensorNames.Order(), d.Tensors.Select(t => t.Name).Order());
            foreach (var spec in d.Tensors)
                Assert.Equal(spec.Shape, checkpoint.Get(spec.Name).Shape);
        }
    }
}
