using System.Runtime.InteropServices;
using System.Text.Json;
using System.Text.Json.Nodes;
using Behemoth.Exporter.Export;
using Behemoth.Formats.Checkpoints;
using Behemoth.Formats.Errors;
using Behemoth.Package;
using Behemoth.Reference;
using Behemoth.Runtime;
using Behemoth.Tests;

namespace Behemoth.Exporter.Tests;

/// <summary>
/// Device profiles in one package: each profile's graph routes among the experts it keeps, and the weights of an
/// expert kept by several profiles are stored once. The oracle for a profile is the reference engine on a checkpoint
/// that really has only those experts (written here from the Mixtral golden set: 8 experts, top-2).
/// </summary>
public sealed class ProfileTests
{
    private static readonly int[] AllExperts = [0, 1, 2, 3, 4, 5, 6, 7];

    // Nested per layer (half ⊂ mid ⊂ full), and each layer keeps different experts.
    private static readonly ProfileSpec Mid = new("mid", "six experts per layer", new Dictionary<int, int[]> { [0] = [0, 1, 3, 4, 6, 7], [1] = [1, 2, 3, 5, 6, 7] });
    private static readonly ProfileSpec Half = new("half", "four experts per layer", new Dictionary<int, int[]> { [0] = [7, 1, 4, 0], [1] = [2, 5, 6, 3] });

    [Theory]
    [InlineData(MoeForm.Fused)]
    [InlineData(MoeForm.Decomposed)]
    public void Each_profile_matches_the_reference_engine_on_a_checkpoint_pruned_to_its_experts(MoeForm form)
    {
        string golden = TestPaths.Golden("mixtral");
        using var temp = new TempDirectory();
        PackageExporter.Export(golden, temp.File("pkg"), new ExportOptions { Moe = form, Profiles = [Mid, Half] }, overwrite: false);
        int[] ids = JsonSerializer.Deserialize<int[]>(File.ReadAllText(Path.Combine(golden, "input_ids.json")))!;

        foreach (var profile in new[] { Mid, Half })
        {
            string pruned = WritePrunedMixtral(golden, temp.File("pruned-" + profile.Name), profile.Experts);
            using var reference = ReferenceModel.Load(pruned);
            float[] expected = reference.Forward(ids);
            using var session = DecoderSession.Open(temp.File("pkg"), profile.Name);
            float[] whole = session.Forward(ids, session.NewCache());
            AssertClose(expected, whole, 1e-4, $"{profile.Name}, whole sequence");

            var cache = session.NewCache();
            var stepwise = new List<float>();
            for (int t = 0; t < ids.Length; t++) stepwise.AddRange(session.Forward(ids.AsSpan(t, 1), cache));
            AssertClose(expected, stepwise.ToArray(), 1e-4, $"{profile.Name}, token by token");
        }
    }

    [Theory]
    [InlineData(MoeForm.Fused, WeightType.Fp32)]
    [InlineData(MoeForm.Fused, WeightType.Int4)]
    [InlineData(MoeForm.Decomposed, WeightType.Int8)]
    public void Profiles_store_no_expert_twice(MoeForm form, WeightType quant)
    {
        string golden = TestPaths.Golden("mixtral");
        using var temp = new TempDirectory();
        var options = new ExportOptions { Moe = form, Quant = quant, BlockSize = 16 };
        var alone = PackageExporter.Export(golden, temp.File("full"), options, overwrite: false);
        var both = PackageExporter.Export(golden, temp.File("pkg"), options with { Profiles = [Mid, Half] }, overwrite: false);

        // The extra profiles add their graphs and a few router rows, never expert weights.
        var config = Formats.Architectures.ArchitectureRegistry.ReadDecoder(Formats.Architectures.ArchitectureRegistry.LoadConfig(golden));
        long routerRows = 2L * (6 + 4) * config.HiddenSize * sizeof(float);
        const long alignment = 4096;
        Assert.InRange(both.WeightBytes - alone.WeightBytes, routerRows, routerRows + 4 * alignment);

        // Each profile records what it references; smaller profiles reference less.
        var manifest = PackageReader.ReadManifest(temp.File("pkg"));
        long full = manifest.Profiles["full"].WeightBytes!.Value, mid = manifest.Profiles["mid"].WeightBytes!.Value, half = manifest.Profiles["half"].WeightBytes!.Value;
        Assert.True(full > mid && mid > half, $"weight bytes full {full}, mid {mid}, half {half}");
        Assert.True(full <= both.WeightBytes, $"the full profile references {full} of {both.WeightBytes} bytes");
        Assert.Equal(["full", "half", "mid"], manifest.Profiles.Keys.Order());
        Assert.Equal(Half.Experts[0].Order(), manifest.Profiles["half"].Experts.Single(l => l.Layer == 0).ExpertIds.Order());
        Assert.All(manifest.Experts, l => Assert.Equal(AllExperts, l.ExpertIds.Order()));

        // Every profile loads and runs.
        foreach (var name in manifest.Profiles.Keys)
        {
            using var session = DecoderSession.Open(temp.File("pkg"), name);
            Assert.All(session.Forward([1, 2, 3], session.NewCache()), v => Assert.True(float.IsFinite(v)));
        }
    }

    [Fact]
    public void Int4_profile_computes_its_experts_dequantized_weights()
    {
        // The int4 kernels on a prefix of the expert stack (weights and scales) against a float32 graph of the same
        // dequantized experts, exported from the pruned checkpoint.
        string golden = TestPaths.Golden("mixtral");
        using var temp = new TempDirectory();
        var options = new ExportOptions { Quant = WeightType.Int4, BlockSize = 16 };
        PackageExporter.Export(golden, temp.File("pkg"), options with { Profiles = [Mid, Half] }, overwrite: false);
        string pruned = WritePrunedMixtral(golden, temp.File("pruned"), Half.Experts);
        PackageExporter.Export(pruned, temp.File("sim"), options with { SimulateQuantization = true }, overwrite: false);
        int[] ids = JsonSerializer.Deserialize<int[]>(File.ReadAllText(Path.Combine(golden, "input_ids.json")))!;
        using var profile = DecoderSession.Open(temp.File("pkg"), "half");
        using var simulated = DecoderSession.Open(temp.File("sim"));
        AssertClose(simulated.Forward(ids, simulated.NewCache()), profile.Forward(ids, profile.NewCache()), 1e-4, "int4 half profile");
    }

    [Fact]
    public void Fused_form_shares_one_stack_between_profiles_whose_sets_are_not_nested()
    {
        // half and other overlap without nesting: the stack is ordered so that each is a contiguous slice
        var other = new ProfileSpec("other", "not nested with half", new Dictionary<int, int[]> { [0] = [2, 3, 5, 6], [1] = [0, 1, 2, 3] });
        string golden = TestPaths.Golden("mixtral");
        using var temp = new TempDirectory();
        var alone = PackageExporter.Export(golden, temp.File("full"), new ExportOptions(), overwrite: false);
        var both = PackageExporter.Export(golden, temp.File("pkg"), new ExportOptions { Profiles = [Half, other] }, overwrite: false);
        var config = Formats.Architectures.ArchitectureRegistry.ReadDecoder(Formats.Architectures.ArchitectureRegistry.LoadConfig(golden));
        Assert.InRange(both.WeightBytes - alone.WeightBytes, 0, 2L * 2 * 4 * config.HiddenSize * sizeof(float) + 4 * 4096);

        int[] ids = JsonSerializer.Deserialize<int[]>(File.ReadAllText(Path.Combine(golden, "input_ids.json")))!;
        foreach (var profile in new[] { Half, other })
        {
            using var reference = ReferenceModel.Load(WritePrunedMixtral(golden, temp.File("pruned-" + profile.Name), profile.Experts));
            using var session = DecoderSession.Open(temp.File("pkg"), profile.Name);
            AssertClose(reference.Forward(ids), session.Forward(ids, session.NewCache()), 1e-4, profile.Name);
        }
    }

    [Fact]
    public void Fused_form_refuses_sets_no_stack_order_makes_contiguous()
    {
        // {0,1}, {1,2}, {0,2}: a cycle, no order keeps all three contiguous
        ProfileSpec P(string name, int[] ids) => new(name, "", new Dictionary<int, int[]> { [0] = ids });
        using var temp = new TempDirectory();
        var error = Assert.Throws<BehemothException>(() => PackageExporter.Export(TestPaths.Golden("mixtral"), temp.File("pkg"),
            new ExportOptions { Profiles = [P("a", [0, 1]), P("b", [1, 2]), P("c", [0, 2])] }, overwrite: false));
        Assert.Contains("layer 0", error.Message);
        Assert.Contains("--moe decomposed", error.Message);
        Assert.False(Directory.Exists(temp.File("pkg")));

        // the decomposed form stores experts one by one, so any sets share
        PackageExporter.Export(TestPaths.Golden("mixtral"), temp.File("pkg"),
            new ExportOptions { Moe = MoeForm.Decomposed, Profiles = [P("a", [0, 1]), P("b", [1, 2]), P("c", [0, 2])] }, overwrite: false);
    }

    [Theory]
    [InlineData("Full", "not valid")]
    [InlineData("full", "given twice")]
    public void Bad_profile_specs_are_refused(string name, string message)
    {
        using var temp = new TempDirectory();
        var error = Assert.Throws<BehemothException>(() => PackageExporter.Export(TestPaths.Golden("mixtral"), temp.File("pkg"),
            new ExportOptions { Profiles = [new ProfileSpec(name, "", new Dictionary<int, int[]>())] }, overwrite: false));
        Assert.Contains(message, error.Message);
    }

    [Fact]
    public void A_profile_keeping_fewer_experts_than_top_k_is_refused()
    {
        using var temp = new TempDirectory();
        var error = Assert.Throws<BehemothException>(() => PackageExporter.Export(TestPaths.Golden("mixtral"), temp.File("pkg"),
            new ExportOptions { Profiles = [new ProfileSpec("tiny", "", new Dictionary<int, int[]> { [1] = [3] })] }, overwrite: false));
        Assert.Contains("layer 1: keeps 1 experts, fewer than the 2", error.Message);
    }

    [Fact]
    public void A_memory_budget_opens_the_largest_profile_that_fits()
    {
        using var temp = new TempDirectory();
        PackageExporter.Export(TestPaths.Golden("mixtral"), temp.File("pkg"), new ExportOptions { Profiles = [Mid, Half] }, overwrite: false);
        var manifest = PackageReader.ReadManifest(temp.File("pkg"));
        long kv = ProfileSelection.KvCacheBytes(manifest, 64);
        Assert.True(kv > 0);
        long Need(string p) => ProfileSelection.WeightBytes(manifest, p) + kv;

        using (var s = DecoderSession.OpenWithinBudget(temp.File("pkg"), Need("full"), 64, ExecutionProvider.Cpu)) Assert.Equal("full", s.Profile);
        using (var s = DecoderSession.OpenWithinBudget(temp.File("pkg"), Need("full") - 1, 64, ExecutionProvider.Cpu)) Assert.Equal("mid", s.Profile);
        using (var s = DecoderSession.OpenWithinBudget(temp.File("pkg"), Need("mid") - 1, 64, ExecutionProvider.Cpu)) Assert.Equal("half", s.Profile);
        var error = Assert.Throws<ProfileBudgetException>(() => DecoderSession.OpenWithinBudget(temp.File("pkg"), Need("half") - 1, 64, ExecutionProvider.Cpu));
        foreach (var p in new[] { "full", "mid", "half" }) Assert.Contains($"{p} {Need(p) / 1e6:F1} MB", error.Message);
    }

    [Fact]
    public void A_profile_verifies_only_the_weight_blocks_it_reads()
    {
        using var temp = new TempDirectory();
        PackageExporter.Export(TestPaths.Golden("mixtral"), temp.File("pkg"),
            new ExportOptions { Profiles = [Mid, Half], WeightHashBlockBytes = 4096 }, overwrite: false);
        var manifest = PackageReader.ReadManifest(temp.File("pkg"));
        var half = manifest.Profiles["half"].WeightRegions!;
        var full = manifest.Profiles["full"].WeightRegions!;
        // a byte the full profile reads and the half profile does not, in a block the half profile does not touch
        long target = Enumerable.Range(0, (int)(manifest.Files["weights.bin"].Bytes / 4096)).Select(b => b * 4096L + 100)
            .First(o => full.Any(r => o >= r[0] && o < r[0] + r[1]) && !half.Any(r => r[0] / 4096 <= o / 4096 && o / 4096 <= (r[0] + r[1] - 1) / 4096));
        string weights = temp.File("pkg/weights.bin");
        using (var f = new FileStream(weights, FileMode.Open, FileAccess.ReadWrite))
        {
            f.Position = target;
            int b = f.ReadByte();
            f.Position = target;
            f.WriteByte((byte)(b ^ 0x40));
        }
        using (var session = DecoderSession.Open(temp.File("pkg"), "half")) Assert.Equal("half", session.Profile);
        var error = Assert.Throws<PackageFormatException>(() => DecoderSession.Open(temp.File("pkg"), "full"));
        Assert.Contains("weights.bin", error.Message);
        Assert.Contains("SHA-256", error.Message);
    }

    /// <summary>A Mixtral checkpoint with only <paramref name="kept"/> experts per layer, renumbered 0..n-1 in the given order.</summary>
    private static string WritePrunedMixtral(string golden, string directory, IReadOnlyDictionary<int, int[]> kept)
    {
        Directory.CreateDirectory(directory);
        int n = kept.Values.First().Length;
        Assert.All(kept.Values, k => Assert.Equal(n, k.Length));
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(golden, "config.json")))!;
        config["num_local_experts"] = n;
        File.WriteAllText(Path.Combine(directory, "config.json"), config.ToJsonString());

        using var checkpoint = Checkpoint.Open(golden);
        var tensors = new List<SafetensorsWriter.Tensor>();
        foreach (string name in checkpoint.TensorNames.Order())
        {
            var t = checkpoint.Get(name);
            float[] data = t.ReadFloat32();
            var parts = name.Split('.');
            if (name.Contains(".block_sparse_moe.experts."))
            {
                int layer = int.Parse(parts[2]), expert = int.Parse(parts[5]);
                int index = Array.IndexOf(kept[layer], expert);
                if (index < 0) continue;
                parts[5] = index.ToString();
                tensors.Add(F32(string.Join('.', parts), t.Shape, data));
            }
            else if (name.EndsWith(".block_sparse_moe.gate.weight"))
            {
                int layer = int.Parse(parts[2]);
                long h = t.Shape[1];
                var rows = kept[layer].SelectMany(e => data.AsSpan((int)(e * h), (int)h).ToArray()).ToArray();
                tensors.Add(F32(name, [n, h], rows));
            }
            else
                tensors.Add(F32(name, t.Shape, data));
        }
        File.WriteAllBytes(Path.Combine(directory, "model.safetensors"), SafetensorsWriter.Build(tensors));
        return directory;
    }

    private static SafetensorsWriter.Tensor F32(string name, long[] shape, float[] data) =>
        new(name, "F32", shape, MemoryMarshal.AsBytes(data.AsSpan()).ToArray());

    private static void AssertClose(float[] expected, float[] actual, double tolerance, string how)
    {
        Assert.Equal(expected.Length, actual.Length);
        double max = 0;
        for (int i = 0; i < expected.Length; i++) max = Math.Max(max, Math.Abs(expected[i] - actual[i]));
        Assert.True(max <= tolerance, $"{how}: max |diff| {max:E3}");
    }
}
