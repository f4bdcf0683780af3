using System.Text;
using Behemoth.Formats.Errors;
using Behemoth.Formats.Safetensors;
using Behemoth.Tests;
using static Behemoth.Tests.SafetensorsWriter;

namespace Behemoth.Formats.Tests;

public sealed class SafetensorsFileTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    private static Tensor[] Sample() =>
    [
        F32("a", [2, 3], i => i + 0.5f),
        new Tensor("b", "F16", [4], [0x00, 0x3C, 0x00, 0xC0, 0x00, 0x38, 0x00, 0x7C]), // 1, -2, 0.5, +inf
        new Tensor("c", "BF16", [2], [0x80, 0x3F, 0x40, 0xC0]),                            // 1, -3
    ];

    private string Write(byte[] bytes, string name = "model.safetensors")
    {
        string path = _dir.File(name);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    private CheckpointFormatException Rejects(byte[] bytes)
    {
        string path = Write(bytes);
        var e = Assert.Throws<CheckpointFormatException>(() => SafetensorsFile.Open(path).Dispose());
        Assert.Contains(path, e.Message);
        return e;
    }

    [Fact]
    public void Reads_f32_f16_and_bf16_as_float32()
    {
        using var file = SafetensorsFile.Open(Write(Build(Sample())));
        Assert.Equal(["a", "b", "c"], file.Tensors.Select(t => t.Name).Order());
        Assert.Equal("pt", file.Metadata["format"]);

        float[] Read(string name)
        {
            var entry = file.GetEntry(name);
            var values = new float[entry.ElementCount];
            FloatConversion.ToFloat32(file.GetBytes(entry), entry.DType, values);
            return values;
        }

        Assert.Equal([0.5f, 1.5f, 2.5f, 3.5f, 4.5f, 5.5f], Read("a"));
        Assert.Equal([1f, -2f, 0.5f, float.PositiveInfinity], Read("b"));
        Assert.Equal([1f, -3f], Read("c"));
        Assert.Equal(24 + 8 + 4, file.BytesRead);
    }

    [Fact]
    public void Truncated_file_names_the_tensor_that_runs_past_the_end()
    {
        var bytes = Build(Sample());
        var e = Rejects(bytes[..^3]);
        Assert.Equal("c", e.TensorName);
        Assert.Contains("run past the end", e.Message);
    }

    [Fact]
    public void Overlapping_offsets_name_both_tensors()
    {
        var tensors = Sample();
        string json = Encoding.UTF8.GetString(HeaderJson(tensors)).Replace("[24,32]", "[20,28]").Replace("[32,36]", "[28,32]");
        var e = Rejects(Build(tensors, Encoding.UTF8.GetBytes(json)));
        Assert.True(e.Message.Contains("overlap tensor 'a'", StringComparison.Ordinal), e.Message);
        Assert.Equal("b", e.TensorName);
    }

    [Fact]
    public void Dtype_times_shape_must_equal_byte_length()
    {
        var tensors = Sample();
        string json = Encoding.UTF8.GetString(HeaderJson(tensors)).Replace("[2,3]", "[3,3]");
        var e = Rejects(Build(tensors, Encoding.UTF8.GetBytes(json)));
        Assert.Equal("a", e.TensorName);
        Assert.Contains("F32 × shape [3, 3] needs 36 bytes but data_offsets [0, 24] span 24", e.Message);
    }

    [Theory]
    [InlineData("\"F32\"", "\"Q4_K\"", "unknown dtype 'Q4_K'")]
    [InlineData("[2,3]", "[2,-3]", "non-negative integers")]
    [InlineData("[2,3]", "\"2x3\"", "'shape' is missing or not an array")]
    [InlineData("[0,24]", "[0,24,36]", "must hold 2 integers")]
    [InlineData("[0,24]", "[24,0]", "end before they begin")]
    [InlineData("[0,24]", "[0,1e400]", "non-negative integers")]
    [InlineData("[2,3]", "[2,3.5]", "non-negative integers")]
    public void Malformed_entries_are_explained(string from, string to, string expected)
    {
        var tensors = Sample();
        string json = Encoding.UTF8.GetString(HeaderJson(tensors));
        int at = json.IndexOf(from, StringComparison.Ordinal);
        json = json[..at] + to + json[(at + from.Length)..];
        var e = Rejects(Build(tensors, Encoding.UTF8.GetBytes(json)));
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void Holes_and_trailing_bytes_are_refused()
    {
        var tensors = Sample();
        var withTrailing = Build(tensors).Concat(new byte[5]).ToArray();
        Assert.Contains("trailing bytes", Rejects(withTrailing).Message);

        string json = Encoding.UTF8.GetString(HeaderJson(tensors)).Replace("[32,36]", "[34,38]");
        var bytes = Build(tensors, Encoding.UTF8.GetBytes(json)).Concat(new byte[2]).ToArray();
        Assert.Contains("not covered by any tensor", Rejects(bytes).Message);
    }

    [Fact]
    public void Bad_length_prefix_or_tiny_file_is_refused()
    {
        Assert.Contains("too short", Rejects([1, 2, 3]).Message);
        var bytes = Build(Sample());
        BitConverter.TryWriteBytes(bytes.AsSpan(0, 8), (ulong)bytes.Length);
        Assert.Contains("only", Rejects(bytes).Message);
        BitConverter.TryWriteBytes(bytes.AsSpan(0, 8), ulong.MaxValue);
        Assert.Contains("over the format's limit", Rejects(bytes).Message);
    }

    [Fact]
    public void Invalid_json_duplicates_and_non_objects_are_refused()
    {
        var tensors = Sample();
        string json = Encoding.UTF8.GetString(HeaderJson(tensors));
        Assert.Contains("not valid JSON", Rejects(Build(tensors, Encoding.UTF8.GetBytes(json[..^1] + " "))).Message);
        Assert.Contains("must be a JSON object", Rejects(Build([], Encoding.UTF8.GetBytes("[1, 2]"))).Message);

        string duplicated = json.Replace("\"b\":", "\"a\":");
        Assert.Contains("declared more than once", Rejects(Build(tensors, Encoding.UTF8.GetBytes(duplicated))).Message);
    }

    [Fact]
    public void Missing_file_is_a_format_error_naming_it()
    {
        var e = Assert.Throws<CheckpointFormatException>(() => SafetensorsFile.Open(_dir.File("absent.safetensors")));
        Assert.Contains("absent.safetensors", e.Message);
    }

    [Fact]
    public void Use_after_dispose_throws()
    {
        var file = SafetensorsFile.Open(Write(Build(Sample())));
        var entry = file.GetEntry("a");
        file.Dispose();
        file.Dispose();
        Assert.Throws<ObjectDisposedException>(() => file.GetBytes(entry).Length);
    }
}
