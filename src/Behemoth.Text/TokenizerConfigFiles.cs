using System.Text.Json;

namespace Behemoth.Text;

/// <summary>
/// What Hugging Face's <c>tokenizer_config.json</c> and <c>special_tokens_map.json</c> say about special tokens, when a
/// model directory or package carries them: the added tokens with their ids, and which of them are BOS and EOS.
/// </summary>
internal sealed record TokenizerConfigFiles(IReadOnlyDictionary<string, int>? AddedTokens, string? Bos, string? Eos, string? ChatTemplate = null)
{
    public static TokenizerConfigFiles Read(TokenizerFiles files)
    {
        Dictionary<string, int>? added = null;
        string? bos = null, eos = null, template = null;
        string config = files.PathOf("tokenizer_config.json");
        if (files.Contains("tokenizer_config.json"))
        {
            using var doc = Parse(config, files.Read("tokenizer_config.json"));
            var root = doc.RootElement;
            if (root.TryGetProperty("added_tokens_decoder", out var decoder) && decoder.ValueKind == JsonValueKind.Object)
            {
                added = new Dictionary<string, int>(StringComparer.Ordinal);
                foreach (var entry in decoder.EnumerateObject())
                {
                    if (!int.TryParse(entry.Name, out int id) || !entry.Value.TryGetProperty("content", out var content) || content.GetString() is not { Length: > 0 } text)
                        throw new TokenizerFormatException(config, $"added_tokens_decoder entry '{entry.Name}' needs an integer key and a non-empty \"content\"");
                    added[text] = id;
                }
            }
            bos = TokenText(root, "bos_token");
            eos = TokenText(root, "eos_token");
            template = TemplateText(root);
        }
        string map = files.PathOf("special_tokens_map.json");
        if (files.Contains("special_tokens_map.json"))
        {
            using var doc = Parse(map, files.Read("special_tokens_map.json"));
            bos ??= TokenText(doc.RootElement, "bos_token");
            eos ??= TokenText(doc.RootElement, "eos_token");
        }
        // newer exports keep the template in its own file, which wins
        if (files.Contains("chat_template.jinja")) template = System.Text.Encoding.UTF8.GetString(files.Read("chat_template.jinja"));
        return new TokenizerConfigFiles(added, bos, eos, template);
    }

    /// <summary>chat_template as a string, or the "default" of a list of {"name", "template"} (else the first).</summary>
    private static string? TemplateText(JsonElement root)
    {
        if (!root.TryGetProperty("chat_template", out var value)) return null;
        if (value.ValueKind == JsonValueKind.String) return value.GetString();
        if (value.ValueKind != JsonValueKind.Array) return null;
        string? first = null;
        foreach (var entry in value.EnumerateArray())
        {
            if (entry.ValueKind != JsonValueKind.Object || !entry.TryGetProperty("template", out var t) || t.ValueKind != JsonValueKind.String) continue;
            first ??= t.GetString();
            if (entry.TryGetProperty("name", out var n) && n.ValueKind == JsonValueKind.String && n.GetString() == "default") return t.GetString();
        }
        return first;
    }

    /// <summary>A token given either as a string or as an AddedToken object ({"content": …}).</summary>
    private static string? TokenText(JsonElement root, string name) =>
        !root.TryGetProperty(name, out var value) ? null
        : value.ValueKind == JsonValueKind.String ? value.GetString()
        : value.ValueKind == JsonValueKind.Object && value.TryGetProperty("content", out var content) ? content.GetString()
        : null;

    private static JsonDocument Parse(string path, byte[] bytes)
    {
        try
        {
            return JsonDocument.Parse(bytes);
        }
        catch (JsonException e)
        {
            throw new TokenizerFormatException(path, "not valid JSON: " + e.Message, e);
        }
    }
}
