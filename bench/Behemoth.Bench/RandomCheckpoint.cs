using System.Buffers.Binary;
using System.Text;
using System.Text.Json.Nodes;
using Behemoth.Formats.Architectures;
using Behemoth.Formats.Description;

namespace Behemoth.Bench;

/// <summary>
/// Writes a random-weight bf16 checkpoint with exactly the tensor names and shapes a real config.json implies, in
/// ~4 GB shards with a model.safetensors.index.json, one tensor at a time (memory stays small whatever the model).
/// </summary>
internal static class RandomCheckpoint
{
    private const long ShardBytes = 4L << 30;

    public static long Write(string configPath, string directory)
    {
        var config = ArchitectureRegistry.ReadDecoder(ArchitectureRegistry.LoadConfig(configPath));
        var tensors = ModelDescription.FromDecoder(config).Tensors;
        Directory.CreateDirectory(directory);
        File.Copy(configPath, Path.Combine(directory, "config.json"), overwrite: true);

        // group tensors into shards in order
        var shards = new List<List<TensorSpec>> { new() };
        long size = 0;
        foreach (var t in tensors)
        {
            long bytes = t.Elements * 2;
            if (size > 0 && size + bytes > ShardBytes) { shards.Add([]); size = 0; }
            shards[^1].Add(t);
            size += bytes;
        }
        var weightMap = new JsonObject();
        long total = 0;
        var rng = new Random(1234);
        for (int s = 0; s < shards.Count; s++)
        {
            string name = $"model-{s + 1:D5}-of-{shards.Count:D5}.safetensors";
            total += WriteShard(Path.Combine(directory, name), shards[s], rng);
            foreach (var t in shards[s]) weightMap[t.Name] = name;
            Console.Error.WriteLine($"  wrote {name} ({shards[s].Count} tensors)");
        }
        var index = new JsonObject { ["metadata"] = new JsonObject { ["total_size"] = total }, ["weight_map"] = weightMap };
        File.WriteAllText(Path.Combine(directory, "model.safetensors.index.json"), index.ToJsonString());
        return total;
    }

    private static long WriteShard(string path, List<TensorSpec> tensors, Random rng)
    {
        var header = new JsonObject();
        long offset = 0;
        foreach (var t in tensors)
        {
            long bytes = t.Elements * 2;
            header[t.Name] = new JsonObject
            {
                ["dtype"] = "BF16",
                ["shape"] = new JsonArray(t.Shape.Select(d => (JsonNode)d).ToArray()),
                ["data_offsets"] = new JsonArray(offset, offset + bytes),
            };
            offset += bytes;
        }
        byte[] json = Encoding.UTF8.GetBytes(header.ToJsonString());
        int pad = (8 - json.Length % 8) % 8;
        using var file = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20);
        Span<byte> prefix = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(prefix, (ulong)(json.Length + pad));
        file.Write(prefix);
        file.Write(json);
        file.Write(Encoding.ASCII.GetBytes(new string(' ', pad)));   // the format pads its header with spaces
        var buffer = new byte[1 << 22];
        foreach (var t in tensors)
        {
            // norms are ones (as trained models have them near 1); everything else small random values
            bool ones = t.Role == TensorRole.Norm;
            for (long left = t.Elements; left > 0;)
            {
                int n = (int)Math.Min(left, buffer.Length / 2);
                for (int i = 0; i < n; i++)
                {
                    float v = ones ? 1f : (rng.NextSingle() - 0.5f) * 0.04f;
                    BinaryPrimitives.WriteUInt16LittleEndian(buffer.AsSpan(2 * i), (ushort)(BitConverter.SingleToUInt32Bits(v) >> 16));
                }
                file.Write(buffer, 0, 2 * n);
                left -= n;
            }
        }
        return offset;
    }
}
