using System.Text.Json;
using Behemoth.Formats.Errors;

namespace Behemoth.Formats.Safetensors;

/// <summary>
/// Parses and validates a safetensors header. The format: an 8-byte little-endian header length N, N bytes of
/// UTF-8 JSON mapping tensor names to <c>{dtype, shape, data_offsets}</c> (plus an optional string map
/// <c>__metadata__</c>), then the data section. As the format's specification requires, the data section must
/// be covered exactly: no tensor may overlap another, leave a hole, or run past the end of the file.
/// </summary>
public static class SafetensorsHeader
{
    /// <summary>The format's own limit on the JSON header (100 MB), which also bounds what a bad length prefix can make us read.</summary>
    public const long MaxHeaderBytes = 100_000_000;

    public sealed record Parsed(IReadOnlyList<TensorEntry> Tensors, IReadOnlyDictionary<string, string> Metadata, long HeaderBytes);

    /// <summary>Validates the length prefix against the file size and returns the header length.</summary>
    public static long ReadHeaderLength(string file, ReadOnlySpan<byte> prefix, long fileLength)
    {
        if (fileLength < 8 || prefix.Length < 8)
            throw new CheckpointFormatException(file, $"file is {fileLength} bytes, too short for a safetensors header (needs at least 8 bytes)");
        ulong n = BitConverter.ToUInt64(prefix[..8]);
        if (n < 2)
            throw new CheckpointFormatException(file, $"header length prefix is {n}; a JSON header needs at least 2 bytes");
        if (n > (ulong)MaxHeaderBytes)
            throw new CheckpointFormatException(file, $"header length prefix is {n} bytes, over the format's limit of {MaxHeaderBytes} (not a safetensors file, or corrupt)");
        if ((long)n > fileLength - 8)
            throw new CheckpointFormatException(file, $"header length prefix is {n} bytes but only {fileLength - 8} bytes follow it (file truncated?)");
        return (long)n;
    }

    /// <summary>
    /// Parses the JSON header. <paramref name="dataLength"/> is the size of the data section (file length − 8 − header length).
    /// Every problem is reported as a <see cref="CheckpointFormatException"/> naming the file and tensor.
    /// </summary>
    public static Parsed Parse(string file, ReadOnlyMemory<byte> json, long dataLength)
    {
        // Names are decoded from UTF-8 later; refuse bad bytes here rather than fail half-way through.
        if (!System.Text.Unicode.Utf8.IsValid(json.Span))
            throw new CheckpointFormatException(file, "header is not valid UTF-8");
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(json, new JsonDocumentOptions { MaxDepth = 16 });
        }
        catch (JsonException e)
        {
            throw new CheckpointFormatException(file, $"header is not valid JSON ({e.Message})", inner: e);
        }
        catch (ArgumentException e)
        {
            throw new CheckpointFormatException(file, $"header is not valid UTF-8 JSON ({e.Message})", inner: e);
        }

        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
                throw new CheckpointFormatException(file, $"header must be a JSON object, found {doc.RootElement.ValueKind}");
            if (!Config.JsonStrings.AllDecodable(doc.RootElement))
                throw new CheckpointFormatException(file, "header holds a string that is not valid Unicode (a lone surrogate escape)");

            var tensors = new List<TensorEntry>();
            var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
            var seen = new HashSet<string>(StringComparer.Ordinal);
            foreach (var property in doc.RootElement.EnumerateObject())
            {
                if (!seen.Add(property.Name))
                    throw new CheckpointFormatException(file, "declared more than once in the header", property.Name);
                if (property.Name == "__metadata__")
                    ReadMetadata(file, property.Value, metadata);
                else
                    tensors.Add(ReadEntry(file, property.Name, property.Value, json.Length));
            }

            CheckCoverage(file, tensors, 8 + json.Length, dataLength);
            return new Parsed(tensors, metadata, json.Length);
        }
    }

    private static void ReadMetadata(string file, JsonElement value, Dictionary<string, string> metadata)
    {
        if (value.ValueKind != JsonValueKind.Object)
            throw new CheckpointFormatException(file, $"'__metadata__' must be an object of strings, found {value.ValueKind}");
        foreach (var item in value.EnumerateObject())
        {
            if (item.Value.ValueKind != JsonValueKind.String)
                throw new CheckpointFormatException(file, $"'__metadata__' entry '{item.Name}' must be a string, found {item.Value.ValueKind}");
            metadata[item.Name] = item.Value.GetString()!;
        }
    }

    private static TensorEntry ReadEntry(string file, string name, JsonElement value, long headerBytes)
    {
        if (value.ValueKind != JsonValueKind.Object)
            throw new CheckpointFormatException(file, $"header entry must be an object with dtype, shape and data_offsets, found {value.ValueKind}", name);

        if (!value.TryGetProperty("dtype", out var dtypeElement) || dtypeElement.ValueKind != JsonValueKind.String)
            throw new CheckpointFormatException(file, "'dtype' is missing or not a string", name);
        string dtypeName = dtypeElement.GetString()!;
        if (!SafetensorsDTypes.TryParse(dtypeName, out var dtype))
            throw new CheckpointFormatException(file, $"unknown dtype '{dtypeName}' (the format defines {SafetensorsDTypes.AllNames})", name);

        long[] shape = ReadIntegers(file, name, value, "shape", expectedCount: null);
        long[] offsets = ReadIntegers(file, name, value, "data_offsets", expectedCount: 2);
        long begin = offsets[0], end = offsets[1];
        if (end < begin)
            throw new CheckpointFormatException(file, $"data_offsets [{begin}, {end}] end before they begin", name);

        long expectedBytes;
        try
        {
            long elements = 1;
            foreach (long d in shape) elements = checked(elements * d);
            expectedBytes = checked(elements * dtype.SizeInBytes());
        }
        catch (OverflowException)
        {
            throw new CheckpointFormatException(file, $"shape {TensorEntry.Format(shape)} is too large to address", name);
        }
        if (expectedBytes != end - begin)
            throw new CheckpointFormatException(file,
                $"dtype {dtype.Name()} × shape {TensorEntry.Format(shape)} needs {expectedBytes} bytes but data_offsets [{begin}, {end}] span {end - begin}", name);

        return new TensorEntry(name, dtype, shape, 8 + headerBytes + begin, end - begin);
    }

    private static long[] ReadIntegers(string file, string tensor, JsonElement entry, string key, int? expectedCount)
    {
        if (!entry.TryGetProperty(key, out var array) || array.ValueKind != JsonValueKind.Array)
            throw new CheckpointFormatException(file, $"'{key}' is missing or not an array", tensor);
        int count = array.GetArrayLength();
        if (expectedCount is int n && count != n)
            throw new CheckpointFormatException(file, $"'{key}' must hold {n} integers, found {count}", tensor);
        if (count > 64)
            throw new CheckpointFormatException(file, $"'{key}' has {count} entries; no tensor has that many dimensions", tensor);
        var values = new long[count];
        int i = 0;
        foreach (var item in array.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.Number || !item.TryGetInt64(out long v) || v < 0)
                throw new CheckpointFormatException(file, $"'{key}' must hold non-negative integers, found {item.GetRawText()}", tensor);
            values[i++] = v;
        }
        return values;
    }

    private static void CheckCoverage(string file, List<TensorEntry> tensors, long dataBase, long dataLength)
    {
        // Offsets in the messages are relative to the data section, as the header writes them.
        long expected = 0;
        TensorEntry? previous = null;
        foreach (var t in tensors.OrderBy(t => t.Offset).ThenBy(t => t.ByteLength))
        {
            long begin = t.Offset - dataBase, end = begin + t.ByteLength;
            if (end > dataLength)
                throw new CheckpointFormatException(file,
                    $"data_offsets [{begin}, {end}] run past the end of the data section ({dataLength} bytes; file truncated?)", t.Name);
            if (begin < expected)
                throw new CheckpointFormatException(file,
                    $"data_offsets [{begin}, {end}] overlap tensor '{previous!.Name}' (which ends at {expected})", t.Name);
            if (begin > expected)
                throw new CheckpointFormatException(file, previous is null
                    ? $"the data section starts with {begin} bytes that no tensor covers (holes are not allowed)"
                    : $"{begin - expected} bytes between tensor '{previous.Name}' and this one are not covered by any tensor (holes are not allowed)", t.Name);
            expected = end;
            previous = t;
        }
        if (expected != dataLength)
            throw new CheckpointFormatException(file,
                $"the tensors cover {expected} bytes of data but the data section holds {dataLength} (trailing bytes are not allowed; file padded or corrupt?)");
    }
}
