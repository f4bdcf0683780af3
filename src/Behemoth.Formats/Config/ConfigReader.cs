using System.Text.Json;
using Behemoth.Formats.Errors;

namespace Behemoth.Formats.Config;

/// <summary>
/// Typed access to one JSON object of a config.json. Every getter either returns a value of the right type
/// or throws a <see cref="ModelConfigException"/> naming the file, the (dotted) field and what was expected.
/// Absent and <c>null</c> fields are treated alike, as Hugging Face's config classes treat them.
/// </summary>
public sealed class ConfigReader
{
    private readonly JsonElement _object;
    private readonly string _prefix;

    private ConfigReader(string file, JsonElement obj, string prefix)
    {
        File = file;
        _object = obj;
        _prefix = prefix;
    }

    public string File { get; }

    /// <summary>Parses <paramref name="file"/>; it must hold a JSON object.</summary>
    public static ConfigReader Load(string file)
    {
        byte[] bytes;
        try
        {
            bytes = Behemoth.Package.PackageFile.ReadInput(file);
        }
        catch (Behemoth.Package.PackageFormatException e)
        {
            throw new ModelConfigException(file, e.Message[(file.Length + 2)..]);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ModelConfigException(file, $"cannot read: {e.Message}");
        }
        return Parse(file, bytes);
    }

    public static ConfigReader Parse(string file, ReadOnlyMemory<byte> json)
    {
        if (!System.Text.Unicode.Utf8.IsValid(json.Span))
            throw new ModelConfigException(file, "not valid UTF-8 text");
        try
        {
            // The document is cloned so the reader does not depend on a disposable JsonDocument.
            using var doc = JsonDocument.Parse(json, new JsonDocumentOptions { AllowTrailingCommas = true, CommentHandling = JsonCommentHandling.Skip });
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
                throw new ModelConfigException(file, $"must hold a JSON object, found {doc.RootElement.ValueKind}");
            if (!JsonStrings.AllDecodable(doc.RootElement))
                throw new ModelConfigException(file, "holds a string that is not valid Unicode (a lone surrogate escape such as \\ud800)");
            return new ConfigReader(file, doc.RootElement.Clone(), "");
        }
        catch (JsonException e)
        {
            throw new ModelConfigException(file, $"not valid JSON ({e.Message})");
        }
    }

    public string PathOf(string key) => _prefix + key;

    public bool Has(string key) => _object.TryGetProperty(key, out var v) && v.ValueKind != JsonValueKind.Null;

    private bool TryGet(string key, out JsonElement value) =>
        _object.TryGetProperty(key, out value) && value.ValueKind != JsonValueKind.Null;

    public ModelConfigException Error(string key, string message) => new(File, message, PathOf(key));

    private ModelConfigException WrongType(string key, string expected, JsonElement found) =>
        Error(key, $"expected {expected}, found {Describe(found)}");

    private static string Describe(JsonElement e)
    {
        string raw = string.Join(' ', e.GetRawText().Split((char[])['\n', '\r', ' ', '\t'], StringSplitOptions.RemoveEmptyEntries));
        if (raw.Length > 40) raw = raw[..40] + "…";
        return $"{e.ValueKind.ToString().ToLowerInvariant()} {raw}";
    }

    public int RequiredInt(string key, int min = 1) =>
        TryGet(key, out var v) ? AsInt(key, v, min) : throw Error(key, "required field is missing");

    public int Int(string key, int fallback, int min = 0) => TryGet(key, out var v) ? AsInt(key, v, min) : fallback;

    public int? OptionalInt(string key, int min = 0) => TryGet(key, out var v) ? AsInt(key, v, min) : null;

    private int AsInt(string key, JsonElement v, int min)
    {
        if (v.ValueKind != JsonValueKind.Number || !v.TryGetInt32(out int n))
        {
            // Hugging Face configs sometimes write integers as 8.0; accept an exact whole number.
            if (v.ValueKind == JsonValueKind.Number && v.TryGetDouble(out double d) && d == Math.Floor(d) && d is >= int.MinValue and <= int.MaxValue)
                n = (int)d;
            else
                throw WrongType(key, "an integer", v);
        }
        if (n < min) throw Error(key, $"must be at least {min}, found {n}");
        return n;
    }

    public double Double(string key, double fallback) => TryGet(key, out var v) ? AsDouble(key, v) : fallback;

    public double? OptionalDouble(string key) => TryGet(key, out var v) ? AsDouble(key, v) : null;

    public double RequiredDouble(string key) =>
        TryGet(key, out var v) ? AsDouble(key, v) : throw Error(key, "required field is missing");

    private double AsDouble(string key, JsonElement v) =>
        v.ValueKind == JsonValueKind.Number && v.TryGetDouble(out double d) && double.IsFinite(d) ? d : throw WrongType(key, "a number", v);

    public bool Bool(string key, bool fallback)
    {
        if (!TryGet(key, out var v)) return fallback;
        return v.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw WrongType(key, "true or false", v),
        };
    }

    public string? OptionalString(string key) =>
        TryGet(key, out var v) ? (v.ValueKind == JsonValueKind.String ? v.GetString() : throw WrongType(key, "a string", v)) : null;

    public string String(string key, string fallback) => OptionalString(key) ?? fallback;

    /// <summary>An integer list; <c>null</c> when absent.</summary>
    public int[]? OptionalIntArray(string key, int min = 0)
    {
        if (!TryGet(key, out var v)) return null;
        if (v.ValueKind != JsonValueKind.Array) throw WrongType(key, "a list of integers", v);
        return v.EnumerateArray().Select((item, i) => AsInt($"{key}[{i}]", item, min)).ToArray();
    }

    /// <summary>A string list; <c>null</c> when absent.</summary>
    public string[]? OptionalStringArray(string key)
    {
        if (!TryGet(key, out var v)) return null;
        if (v.ValueKind != JsonValueKind.Array) throw WrongType(key, "a list of strings", v);
        return v.EnumerateArray().Select((item, i) => item.ValueKind == JsonValueKind.String
            ? item.GetString()! : throw WrongType($"{key}[{i}]", "a string", item)).ToArray();
    }

    /// <summary>An integer or a list of integers (e.g. <c>eos_token_id</c>), as a list.</summary>
    public int[] IntOrIntArray(string key)
    {
        if (!TryGet(key, out var v)) return [];
        return v.ValueKind == JsonValueKind.Array ? OptionalIntArray(key)! : [AsInt(key, v, 0)];
    }

    /// <summary>A nested object; <c>null</c> when absent.</summary>
    public ConfigReader? OptionalObject(string key)
    {
        if (!TryGet(key, out var v)) return null;
        if (v.ValueKind != JsonValueKind.Object) throw WrongType(key, "an object", v);
        return new ConfigReader(File, v, PathOf(key) + ".");
    }

    public ConfigReader RequiredObject(string key) =>
        OptionalObject(key) ?? throw Error(key, "required object is missing");
}
