using System.Text.Json;

namespace Behemoth.Text;

/// <summary>
/// What Hugging Face's <c>tokenizer_config.json</c> and <c>special_tokens_map.json</c> say about special tokens, when a
/// model directory or package carries them: the added tokens with their ids, and which of them are BOS and EOS.
/// </summary>
internal sealed record TokenizerConfigFiles(IReadOnlyDictionary<string, int>? AddedTokens, string? Bos, string? Eos)
{
    public static TokenizerConfigFiles Read(TokenizerFiles files)
    {
        Dictionary<string, int>? added = null;
        string? bos = null, eos = null;
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
        }
        string map = files.PathOf("special_tokens_map.json");
        if (files.Contains("special_tokens_map.json"))
        {
            using var doc = Parse(map, files.Read("special_tokens_map.json"));
            bos ??= TokenText(doc.RootElement, "bos_token");
            eos ??= TokenText(doc.RootElement, "eos_token");
        }
        return new TokenizerConfigFiles(added, bos, eos);
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
