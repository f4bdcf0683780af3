using System.Runtime.InteropServices;
using System.Text.Json.Nodes;
using Behemoth.Exporter.Export;
using Behemoth.Package;
using Behemoth.Runtime;
using Behemoth.Tests;

namespace Behemoth.Exporter.Tests;

/// <summary>behemoth-nano at int4, exported once for the attacks below (each works on its own copy).</summary>
public sealed class NanoPackageFixture : IDisposable
{
    private readonly TempDirectory _temp = new();

    public NanoPackageFixture()
    {
        Package = _temp.File("nano");
        PackageExporter.Export(Path.Combine(TestPaths.RepoRoot, "models", "behemoth-nano"), Package, new ExportOptions { Quant = WeightType.Int4 }, overwrite: false);
    }

    public string Package { get; }

    /// <summary>A copy of the package in a new folder under <paramref name="temp"/>, for a test to alter.</summary>
    public string Copy(TempDirectory temp)
    {
        string dir = temp.File(Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        foreach (var f in Directory.GetFiles(Package)) File.Copy(f, Path.Combine(dir, Path.GetFileName(f)));
        return dir;
    }

    public void Dispose() => _temp.Dispose();
}

/// <summary>
/// The package attacks of the adversarial review, replayed: each must be refused naming the file, or be harmless.
/// What the runtime executes is what it verified, whatever the manifest claims about regions, whatever is dropped
/// into the folder, and whatever is written to the files after loading.
/// </summary>
public sealed class PackageAttackTests(NanoPackageFixture nano) : IClassFixture<NanoPackageFixture>, IDisposable
{
    private readonly TempDirectory _temp = new();

    public void Dispose() => _temp.Dispose();

    private string Copy() => nano.Copy(_temp);

    private static void EditManifest(string dir, Action<JsonNode> edit)
    {
        string path = Path.Combine(dir, PackageManifest.FileName);
        var root = JsonNode.Parse(File.ReadAllText(path))!;
        edit(root);
        File.WriteAllText(path, root.ToJsonString());
    }

    private static void Overwrite(string file, long offset, int count, int seed)
    {
        var bytes = new byte[count];
        new Random(seed).NextBytes(bytes);
        using var stream = new FileStream(file, FileMode.Open, FileAccess.Write);
        stream.Position = offset;
        stream.Write(bytes);
    }

    private static float[] LastLogits(DecoderSession session, int[] ids)
    {
        using var cache = session.NewCache();
        var logits = new float[session.Shape.VocabSize];
        session.ForwardLast(ids, cache, logits);
        return logits;
    }

    [Fact]
    public void Emptied_weight_regions_do_not_skip_the_check_of_altered_weights()
    {
        string dir = Copy();
        EditManifest(dir, m =>
        {
            foreach (var (_, profile) in m["profiles"]!.AsObject()) profile!["weight_regions"] = new JsonArray();
        });
        Overwrite(Path.Combine(dir, "weights.bin"), 1 << 20, 3 << 20, seed: 1);
        var e = Assert.Throws<PackageFormatException>(() => DecoderSession.Open(dir));
        Assert.EndsWith("weights.bin", e.Path);
        Assert.Contains("SHA-256", e.Message);
    }

    [Fact]
    public void An_overflowing_weight_region_in_the_manifest_changes_nothing()
    {
        string dir = Copy();
        EditManifest(dir, m => m["profiles"]!["full"]!["weight_regions"] = new JsonArray(new JsonArray(long.MaxValue - 10, 100)));
        Overwrite(Path.Combine(dir, "weights.bin"), 0, 4096, seed: 2);
        Assert.Throws<PackageFormatException>(() => DecoderSession.Open(dir));
    }

    [Fact]
    public void A_weight_file_the_graph_reads_but_the_profile_does_not_list_is_refused()
    {
        string dir = Copy();
        EditManifest(dir, m => m["profiles"]!["full"]!["files"] = new JsonArray());
        var e = Assert.Throws<PackageFormatException>(() => DecoderSession.Open(dir));
        Assert.Contains("weights.bin", e.Message);
        Assert.EndsWith("full.onnx", e.Path);
    }

    [Fact]
    public void Overwriting_the_weights_after_loading_changes_no_output()
    {
        // ONNX Runtime used to map weights.bin for the life of the session: bytes written to it later were executed
        string dir = Copy();
        using var session = DecoderSession.Open(dir);
        int[] ids = [1, 300, 301, 302, 40, 41];
        var before = LastLogits(session, ids);
        long length = new FileInfo(Path.Combine(dir, "weights.bin")).Length;
        Overwrite(Path.Combine(dir, "weights.bin"), 0, (int)length, seed: 3);
        Assert.Equal(before, LastLogits(session, ids));
    }

    [Fact]
    public void A_tokenizer_config_dropped_into_the_package_is_never_read()
    {
        string dir = Copy();
        var tokenizer = Runtime.Tokenizer.Load(dir);
        var expected = tokenizer.Encode("the weather");
        // the attack: remap "the" to another id through a config the manifest does not list
        File.WriteAllText(Path.Combine(dir, "tokenizer_config.json"),
            """{"added_tokens_decoder": {"5": {"content": "the", "special": true}}, "bos_token": "the"}""");
        Assert.Equal(expected, Runtime.Tokenizer.Load(dir).Encode("the weather"));
        using var model = Model.Open(dir);
        Assert.Equal(expected, model.Tokenizer.Encode("the weather"));
        Assert.Equal(tokenizer.BosTokenId, model.Tokenizer.BosTokenId);
    }

    [Fact]
    public void An_altered_tokenizer_file_is_refused_naming_it()
    {
        string dir = Copy();
        Overwrite(Path.Combine(dir, "tokenizer.model"), 100, 8, seed: 4);
        var e = Assert.Throws<PackageFormatException>(() => Model.Open(dir));
        Assert.EndsWith("tokenizer.model", e.Path);
    }

    [Theory]
    [InlineData("num_hidden_layers", 100_000_000)]
    [InlineData("context_length", 1_000_000_000)]
    [InlineData("vocab_size", 0)]
    [InlineData("head_dim", -1)]
    public void Hostile_sizes_in_the_manifest_are_refused_before_anything_is_allocated(string field, long value)
    {
        string dir = Copy();
        EditManifest(dir, m => m["model"]![field] = value);
        long allocated = GC.GetTotalAllocatedBytes();
        var e = Assert.Throws<PackageFormatException>(() => DecoderSession.Open(dir));
        Assert.Contains(field, e.Message);
        Assert.EndsWith(PackageManifest.FileName, e.Path);
        Assert.True(GC.GetTotalAllocatedBytes() - allocated < 64 << 20, "refused before sizing anything by it");
    }

    [Fact]
    public void A_layer_count_the_graph_does_not_have_is_refused()
    {
        string dir = Copy();
        EditManifest(dir, m =>
        {
            m["model"]!["num_hidden_layers"] = 3;
            m["kv_cache"]!.AsArray().RemoveAt(3);       // consistent with itself: only the graph can tell
        });
        var e = Assert.Throws<PackageFormatException>(() => DecoderSession.Open(dir));
        Assert.Contains("num_hidden_layers is 3", e.Message);
        Assert.Contains("4 layers", e.Message);
    }

    [Theory]
    [InlineData("block_bytes", "0")]
    [InlineData("block_sha256", "null")]
    [InlineData("sha256", "null")]
    [InlineData("bytes", "-5")]
    [InlineData("bytes", "1000000000000000")]
    public void Broken_file_entries_are_refused_naming_the_manifest(string field, string json)
    {
        string dir = Copy();
        EditManifest(dir, m => m["files"]!["weights.bin"]![field] = JsonNode.Parse(json));
        var e = Assert.Throws<PackageFormatException>(() => DecoderSession.Open(dir));
        Assert.EndsWith(PackageManifest.FileName, e.Path);
        Assert.Contains("weights.bin", e.Message);
    }

    [Theory]
    [InlineData("model")]
    [InlineData("profiles")]
    [InlineData("files")]
    [InlineData("tokenizer")]
    public void Null_manifest_fields_are_refused_as_a_bad_package(string field)
    {
        string dir = Copy();
        EditManifest(dir, m => m[field] = null);
        if (field == "tokenizer")
        {
            // a package may have no tokenizer: the session opens, the model asks for one
            using (DecoderSession.Open(dir)) { }
            Assert.Throws<PackageFormatException>(() => Model.Open(dir));
            return;
        }
        var e = Assert.Throws<PackageFormatException>(() => DecoderSession.Open(dir));
        Assert.EndsWith(PackageManifest.FileName, e.Path);
    }

    [Theory]
    [InlineData("manifest.json")]
    [InlineData("tokenizer.model")]
    [InlineData("full.onnx")]
    public async Task A_fifo_in_place_of_a_package_file_is_refused_without_hanging(string file)
    {
        if (!OperatingSystem.IsLinux()) return;
        string dir = Copy();
        File.Delete(Path.Combine(dir, file));
        Assert.Equal(0, MakeFifo(Path.Combine(dir, file), 0b110_100_100));
        var open = Task.Run(() => { using var model = Model.Open(dir); });
        Assert.Same(open, await Task.WhenAny(open, Task.Delay(TimeSpan.FromSeconds(60))));
        var e = await Assert.ThrowsAsync<PackageFormatException>(() => open);
        Assert.EndsWith(file, e.Path);
    }

    [Fact]
    public void A_thread_count_far_beyond_the_cores_is_refused_before_loading()
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => Model.Open(nano.Package, new ModelOptions { IntraOpThreads = 100_000 }));
        Assert.Contains("4 ×", e.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => DecoderSession.Open(nano.Package, "full", ExecutionProvider.Cpu, 100_000));
    }

    [Fact]
    public async Task A_fifo_as_any_other_input_reads_as_empty_instead_of_hanging()
    {
        // a user's inputs may be pipes (a shell's <(...) streams as usual); a FIFO nobody writes to must not hang
        if (!OperatingSystem.IsLinux()) return;
        string dir = _temp.File("inputs");
        Directory.CreateDirectory(dir);
        string Fifo(string name)
        {
            string path = Path.Combine(dir, name);
            Assert.Equal(0, MakeFifo(path, 0b110_100_100));
            return path;
        }
        string config = Fifo("config.json"), device = Fifo("device.json"), stats = Fifo("stats.json"), prompts = Fifo("prompts.jsonl");
        var reads = Task.Run(() =>
        {
            Assert.ThrowsAny<BehemothException>(() => Behemoth.Formats.Config.ConfigReader.Load(config));
            Assert.ThrowsAny<BehemothException>(() => Behemoth.Exporter.Pruning.DeviceSpec.Read(device));
            Assert.ThrowsAny<BehemothException>(() => Behemoth.Exporter.Pruning.ExpertStats.Read(stats));
            Assert.Empty(Runtime.Batch.BatchInput.Read(prompts, new Runtime.Generation.GenerationOptions()));
        });
        Assert.Same(reads, await Task.WhenAny(reads, Task.Delay(TimeSpan.FromSeconds(60))));
        await reads;
    }

    [DllImport("libc", EntryPoint = "mkfifo", SetLastError = true)]
    private static extern int MakeFifo([MarshalAs(UnmanagedType.LPUTF8Str)] string path, uint mode);
}
