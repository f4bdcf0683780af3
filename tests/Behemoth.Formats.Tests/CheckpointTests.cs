using System.Diagnostics;
using System.Text.Json.Nodes;
using Behemoth.Formats.Checkpoints;
using Behemoth.Formats.Errors;
using Behemoth.Tests;
using static Behemoth.Tests.SafetensorsWriter;

namespace Behemoth.Formats.Tests;

public sealed class CheckpointTests
{
    [Fact]
    public void Sharded_checkpoint_resolves_tensors_across_shards()
    {
        using var checkpoint = Checkpoint.Open(TestPaths.Variant("qwen3_moe_sharded_llama3rope"));
        Assert.Equal(2, checkpoint.Files.Count);
        // One tensor from each shard, looked up by name through the index.
        var first = checkpoint.Get(checkpoint.Files[0].Tensors.First().Name);
        var second = checkpoint.Get(checkpoint.Files[1].Tensors.First().Name);
        Assert.NotEqual(first.File.Path, second.File.Path);
        Assert.Equal(checkpoint.Files.Sum(f => f.Tensors.Count), checkpoint.TensorNames.Count());
        Assert.Equal(0, checkpoint.BytesRead);
    }

    [Fact]
    public void Reading_one_expert_reads_exactly_that_experts_bytes()
    {
        using var checkpoint = Checkpoint.Open(TestPaths.Golden("mixtral"));
        string[] names = ["w1", "w2", "w3"];
        long expected = 0;
        foreach (var w in names)
        {
            var t = checkpoint.Get($"model.layers.1.block_sparse_moe.experts.5.{w}.weight");
            Assert.Equal(16 * 64, t.ReadFloat32().Length);
            expected += t.Entry.ByteLength;
        }
        Assert.Equal(expected, checkpoint.BytesRead);
        Assert.True(checkpoint.WeightFileBytes > 20 * expected);
    }

    [Fact]
    public void Reading_one_expert_of_a_100_GB_checkpoint_touches_only_that_expert()
    {
        // A sparse file: 100 experts of 1 GiB each are declared, but only expert 42's bytes exist on disk.
        using var dir = new TempDirectory();
        const long expertBytes = 1L << 30;
        var tensors = new List<Tensor>();
        var header = new JsonObject();
        for (int e = 0; e < 100; e++)
            header[$"model.layers.0.mlp.experts.{e}.down_proj.weight"] = new JsonObject
            {
                ["dtype"] = "F32",
                ["shape"] = new JsonArray(1L << 14, 1L << 14),
                ["data_offsets"] = new JsonArray(e * expertBytes, (e + 1) * expertBytes),
            };
        byte[] json = System.Text.Encoding.UTF8.GetBytes(header.ToJsonString());
        string path = Path.Combine(dir.Path, "model.safetensors");
        long dataStart = 8 + json.Length;
        using (var f = new FileStream(path, FileMode.Create))
        {
            f.Write(BitConverter.GetBytes((ulong)json.Length));
            f.Write(json);
            f.SetLength(dataStart + 100 * expertBytes);
            f.Position = dataStart + 42 * expertBytes + 4096 * 4;
            f.Write(BitConverter.GetBytes(3.25f));
        }

        long rssBefore = Process.GetCurrentProcess().WorkingSet64;
        using var checkpoint = Checkpoint.Open(dir.Path);
        var expert = checkpoint.Get("model.layers.0.mlp.experts.42.down_proj.weight");
        var row = new float[1 << 14];
        expert.ReadFloat32(row, start: 0);                // the first row of expert 42 only
        Assert.Equal(3.25f, row[4096]);
        Assert.Equal(row.Length * 4L, checkpoint.BytesRead);
        Assert.Equal(100 * expertBytes + dataStart, checkpoint.WeightFileBytes);
        long grown = Process.GetCurrentProcess().WorkingSet64 - rssBefore;
        Assert.True(grown < 64L << 20, $"resident memory grew by {grown >> 20} MiB reading 64 KiB of a 100 GiB checkpoint");
    }

    [Fact]
    public void Missing_tensor_names_the_closest_ones_present()
    {
        using var checkpoint = Checkpoint.Open(TestPaths.Golden("mixtral"));
        var e = Assert.Throws<CheckpointFormatException>(() => checkpoint.Get("model.layers.0.block_sparse_moe.gates.weight"));
        Assert.Equal("model.layers.0.block_sparse_moe.gates.weight", e.TensorName);
        Assert.Contains("'model.layers.0.block_sparse_moe.gate.weight'", e.Message);
        Assert.Contains("model.safetensors", e.Message);
    }

    private static string CopySharded(TempDirectory dir)
    {
        foreach (var f in Directory.GetFiles(TestPaths.Variant("qwen3_moe_sharded_llama3rope")))
            File.Copy(f, Path.Combine(dir.Path, Path.GetFileName(f)));
        return Path.Combine(dir.Path, Checkpoint.IndexFileName);
    }

    [Fact]
    public void Index_naming_a_missing_shard_is_refused()
    {
        using var dir = new TempDirectory();
        CopySharded(dir);
        File.Delete(Path.Combine(dir.Path, "model-00002-of-00002.safetensors"));
        var e = Assert.Throws<CheckpointFormatException>(() => Checkpoint.Open(dir.Path));
        Assert.Contains("model-00002-of-00002.safetensors", e.Message);
        Assert.Contains(Checkpoint.IndexFileName, e.Message);
    }

    [Fact]
    public void Index_placing_a_tensor_in_the_wrong_shard_is_refused()
    {
        using var dir = new TempDirectory();
        string index = CopySharded(dir);
        var node = JsonNode.Parse(File.ReadAllText(index))!;
        var map = node["weight_map"]!.AsObject();
        string name = map.First(kv => kv.Value!.GetValue<string>() == "model-00002-of-00002.safetensors").Key;
        map[name] = "model-00001-of-00002.safetensors";
        File.WriteAllText(index, node.ToJsonString());
        var e = Assert.Throws<CheckpointFormatException>(() => Checkpoint.Open(dir.Path));
        Assert.Equal(name, e.TensorName);
        Assert.Contains("model-00001-of-00002.safetensors", e.Message);
    }

    [Theory]
    [InlineData("../model-00001-of-00002.safetensors")]
    [InlineData("/etc/passwd")]
    public void Index_pointing_outside_the_directory_is_refused(string file)
    {
        using var dir = new TempDirectory();
        string index = CopySharded(dir);
        var node = JsonNode.Parse(File.ReadAllText(index))!;
        node["weight_map"]!["lm_head.weight"] = file;
        File.WriteAllText(index, node.ToJsonString());
        var e = Assert.Throws<CheckpointFormatException>(() => Checkpoint.Open(dir.Path));
        Assert.Contains("not a plain file name", e.Message);
    }

    [Fact]
    public void Directory_without_weights_is_refused()
    {
        using var dir = new TempDirectory();
        var e = Assert.Throws<CheckpointFormatException>(() => Checkpoint.Open(dir.Path));
        Assert.Contains("model.safetensors", e.Message);
    }
}
