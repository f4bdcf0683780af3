using System.Text;
using System.Text.Json.Nodes;

namespace Behemoth.Tests;

/// <summary>Writes small safetensors files for tests (the project itself never writes this format).</summary>
public static class SafetensorsWriter
{
    public sealed record Tensor(string Name, string DType, long[] Shape, byte[] Data);

    public static Tensor F32(string name, long[] shape, Func<int, float> value)
    {
        long n = shape.Aggregate(1L, (a, b) => a * b);
        var data = new byte[n * 4];
        for (int i = 0; i < n; i++) BitConverter.TryWriteBytes(data.AsSpan(i * 4), value(i));
        return new Tensor(name, "F32", shape, data);
    }

    public static byte[] HeaderJson(IEnumerable<Tensor> tensors)
    {
        var header = new JsonObject { ["__metadata__"] = new JsonObject { ["format"] = "pt" } };
        long offset = 0;
        foreach (var t in tensors)
        {
            header[t.Name] = new JsonObject
            {
                ["dtype"] = t.DType,
                ["shape"] = new JsonArray(t.Shape.Select(d => (JsonNode)d).ToArray()),
                ["data_offsets"] = new JsonArray(offset, offset + t.Data.Length),
            };
            offset += t.Data.Length;
        }
        return Encoding.UTF8.GetBytes(header.ToJsonString());
    }

    /// <summary>The complete file: 8-byte length, JSON header, data.</summary>
    public static byte[] Build(IReadOnlyList<Tensor> tensors, byte[]? headerOverride = null)
    {
        byte[] header = headerOverride ?? HeaderJson(tensors);
        var file = new MemoryStream();
        file.Write(BitConverter.GetBytes((ulong)header.Length));
        file.Write(header);
        foreach (var t in tensors) file.Write(t.Data);
        return file.ToArray();
    }
}
