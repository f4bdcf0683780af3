using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Behemoth.Runtime.Generation;

namespace Behemoth.Runtime.Batch;

/// <summary>
/// One line of a batch input file, parsed and checked: either a prompt with its generation options, or the reason it
/// cannot run (<see cref="Error"/>), which becomes an error record instead of stopping the job.
/// </summary>
/// <remarks>
/// Every line has a <see cref="Key"/> that names its record in the results: its id (<c>"s:text"</c> for a string id,
/// <c>"n:42"</c> for a number, as written), or <c>"line:N"</c> for a line with no usable id (malformed JSON, an id that
/// is neither a string nor a number) and for a repeated id (the first line with an id wins; later ones get an error
/// record keyed by their line).
/// </remarks>
public sealed record BatchLine
{
    /// <summary>1-based line number in the input file.</summary>
    public required int LineNumber { get; init; }

    /// <summary>The record's identity in the results file (see the remarks on <see cref="BatchLine"/>).</summary>
    public required string Key { get; init; }

    /// <summary>The id as it appeared (a JSON string or number); null when the line has none that can be used.</summary>
    public JsonNode? Id { get; init; }

    /// <summary>The text sharding hashes: a string id's characters, a number id's digits as written, else "line:N".</summary>
    public required string ShardText { get; init; }

    /// <summary>The line's <c>prompt</c> text, as given (no template applied); null for an error line.</summary>
    public string? Prompt { get; init; }

    /// <summary>The job's defaults with this line's own options applied; null for an error line.</summary>
    public GenerationOptions? Options { get; init; }

    /// <summary>Why this line cannot run; null when it can.</summary>
    public string? Error { get; init; }

    /// <summary>True when the record is keyed by line number (no usable id, or a repeated id), so it carries "line".</summary>
    public bool KeyedByLine => Key.StartsWith("line:", StringComparison.Ordinal);

    /// <summary>The per-line option names, as on the command line (<c>--max-tokens</c> → <c>max_tokens</c>).</summary>
    public static IReadOnlyList<string> OptionNames { get; } = ["max_tokens", "temperature", "top_k", "top_p", "seed", "repetition_penalty", "stop"];

    /// <summary>The key of an id node (string or number), or null when it is neither.</summary>
    internal static (string Key, string ShardText)? IdKey(JsonNode? id)
    {
        if (id is not JsonValue value) return null;
        return value.GetValueKind() switch
        {
            JsonValueKind.String => ("s:" + value.GetValue<string>(), value.GetValue<string>()),
            JsonValueKind.Number => ("n:" + value.ToJsonString(), value.ToJsonString()),
            _ => null,
        };
    }

    internal static string LineKey(int lineNumber) => "line:" + lineNumber.ToString(CultureInfo.InvariantCulture);
}

/// <summary>Reads a JSON-lines input file: <c>{"id": …, "prompt": "…", "max_tokens": 16, …}</c> per line.</summary>
public static class BatchInput
{
    /// <summary>
    /// Every non-blank line of <paramref name="path"/>, in order, with the options of <paramref name="defaults"/>
    /// overridden per line. Lines that cannot run carry <see cref="BatchLine.Error"/>; reading never fails on a line.
    /// </summary>
    public static IReadOnlyList<BatchLine> Read(string path, GenerationOptions defaults)
    {
        ArgumentNullException.ThrowIfNull(defaults);
        using var reader = new StreamReader(Behemoth.Package.PackageFile.OpenInput(path), new System.Text.UTF8Encoding(false, false));
        return ParseLines(ReadLines(reader), defaults);
    }

    /// <summary>The longest input line read, in characters (16 Mi, far beyond any context): a longer one is an error record.</summary>
    internal const int MaxLineChars = 16 << 20;

    /// <summary>As <see cref="Read"/>, over lines already in memory.</summary>
    public static IReadOnlyList<BatchLine> Parse(IEnumerable<string> lines, GenerationOptions defaults)
    {
        ArgumentNullException.ThrowIfNull(lines);
        return ParseLines(lines, defaults);
    }

    /// <summary>As <see cref="Parse"/>; a null line is one over <see cref="MaxLineChars"/>.</summary>
    private static List<BatchLine> ParseLines(IEnumerable<string?> lines, GenerationOptions defaults)
    {
        ArgumentNullException.ThrowIfNull(defaults);
        var result = new List<BatchLine>();
        var firstLineOfId = new Dictionary<string, int>(StringComparer.Ordinal);
        int number = 0;
        foreach (string? text in lines)
        {
            number++;
            if (text is null)
            {
                string key = BatchLine.LineKey(number);
                result.Add(new BatchLine { LineNumber = number, Key = key, ShardText = key, Error = $"the line is over {MaxLineChars >> 20} Mi characters" });
                continue;
            }
            if (string.IsNullOrWhiteSpace(text)) continue;
            var line = ParseLine(text, number, defaults);
            if (!line.KeyedByLine)
            {
                if (firstLineOfId.TryGetValue(line.Key, out int first))
                    line = line with
                    {
                        Key = BatchLine.LineKey(number), Options = null, Prompt = null,
                        Error = $"duplicate id: line {first} has the same id and wins",
                    };
                else
                    firstLineOfId[line.Key] = number;
            }
            result.Add(line);
        }
        return result;
    }

    // Duplicate keys ({"id": "x", "id": "y"}) are malformed: which one is meant is anyone's guess.
    private static readonly JsonDocumentOptions s_document = new() { AllowDuplicateProperties = false, MaxDepth = 64 };

    /// <summary>
    /// One line; <paramref name="lineNumber"/> is 1-based. Never fails on the line's content: malformed JSON, a key
    /// given twice, a value of the wrong type or a string that is not valid Unicode (a lone surrogate such as
    /// <c>"\ud800"</c>) becomes <see cref="BatchLine.Error"/>.
    /// </summary>
    public static BatchLine ParseLine(string text, int lineNumber, GenerationOptions defaults)
    {
        ArgumentNullException.ThrowIfNull(text);
        ArgumentNullException.ThrowIfNull(defaults);
        string lineKey = BatchLine.LineKey(lineNumber);
        BatchLine Bad(string error) => new() { LineNumber = lineNumber, Key = lineKey, ShardText = lineKey, Error = error };

        JsonObject obj;
        try
        {
            if (JsonNode.Parse(text, documentOptions: s_document) is not JsonObject o) return Bad("the line is not a JSON object");
            obj = o;
        }
        catch (JsonException e)
        {
            return Bad("malformed JSON: " + e.Message);
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException)
        {
            return Bad("malformed JSON: " + e.Message);     // whatever else the JSON reader refuses late
        }
        if (!obj.TryGetPropertyValue("id", out var id) || id is null) return Bad("the line has no \"id\"");
        if (id is JsonValue idValue && idValue.GetValueKind() == JsonValueKind.String && !TryGetText(idValue, out _))
            return Bad("\"id\" is not valid Unicode text (it has a lone surrogate such as \\ud800)");
        if (BatchLine.IdKey(id) is not var (key, shardText)) return Bad("\"id\" must be a string or a number");

        var line = new BatchLine { LineNumber = lineNumber, Key = key, ShardText = shardText, Id = id.DeepClone() };
        if (!obj.TryGetPropertyValue("prompt", out var p) || p is null) return line with { Error = "the line has no \"prompt\"" };
        if (p is not JsonValue pv || pv.GetValueKind() != JsonValueKind.String) return line with { Error = "\"prompt\" must be a string" };
        if (!TryGetText(pv, out string? prompt)) return line with { Error = "\"prompt\" is not valid Unicode text (it has a lone surrogate such as \\ud800)" };
        try
        {
            var options = ApplyOptions(obj, defaults);
            if (options.FindOutOfRange() is var (option, _, reason))
                return line with { Error = $"{OptionName(option)} {reason}" };
            return line with { Prompt = prompt, Options = options };
        }
        catch (FormatException e)
        {
            return line with { Error = e.Message };
        }
    }

    /// <summary>A JSON string's text, or false when it is not valid UTF-16 (an escaped lone surrogate).</summary>
    private static bool TryGetText(JsonValue value, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out string? text)
    {
        try
        {
            text = value.GetValue<string>();
        }
        catch (InvalidOperationException)
        {
            text = null;
            return false;
        }
        if (HasLoneSurrogate(text))
        {
            text = null;
            return false;
        }
        return true;
    }

    private static bool HasLoneSurrogate(string text)
    {
        for (int i = 0; i < text.Length; i++)
        {
            if (!char.IsSurrogate(text[i])) continue;
            if (char.IsHighSurrogate(text[i]) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1])) i++;
            else return true;
        }
        return false;
    }

    /// <summary><paramref name="text"/> with every lone surrogate replaced by U+FFFD (the text itself when it has none).</summary>
    internal static string ReplaceLoneSurrogates(string text)
    {
        if (!HasLoneSurrogate(text)) return text;
        var chars = text.ToCharArray();
        for (int i = 0; i < chars.Length; i++)
        {
            if (!char.IsSurrogate(chars[i])) continue;
            if (char.IsHighSurrogate(chars[i]) && i + 1 < chars.Length && char.IsLowSurrogate(chars[i + 1])) i++;
            else chars[i] = '\uFFFD';
        }
        return new string(chars);
    }

    private static GenerationOptions ApplyOptions(JsonObject obj, GenerationOptions options)
    {
        if (obj["max_tokens"] is { } m) options = options with { MaxNewTokens = Integer(m, "max_tokens") };
        if (obj["temperature"] is { } t) options = options with { Temperature = Number(t, "temperature") };
        if (obj["top_k"] is { } k) options = options with { TopK = Integer(k, "top_k") };
        if (obj["top_p"] is { } p) options = options with { TopP = Number(p, "top_p") };
        if (obj["seed"] is { } s) options = options with { Seed = Integer(s, "seed") };
        if (obj["repetition_penalty"] is { } r) options = options with { RepetitionPenalty = Number(r, "repetition_penalty") };
        if (obj["stop"] is { } stop)
            options = options with
            {
                StopStrings = stop switch
                {
                    JsonValue v when v.GetValueKind() == JsonValueKind.String => [StopText(v)],
                    JsonArray a when a.All(x => x is JsonValue xv && xv.GetValueKind() == JsonValueKind.String) => a.Select(x => StopText(x!.AsValue())).ToArray(),
                    _ => throw new FormatException("\"stop\" must be a string or an array of strings"),
                },
            };
        return options;
    }

    private static string StopText(JsonValue value) => TryGetText(value, out string? text) ? text
        : throw new FormatException("\"stop\" is not valid Unicode text (it has a lone surrogate such as \\ud800)");

    private static int Integer(JsonNode node, string name) =>
        node is JsonValue v && v.GetValueKind() == JsonValueKind.Number && v.TryGetValue(out int i) ? i
            : throw new FormatException($"\"{name}\" must be a whole number (32-bit)");

    private static float Number(JsonNode node, string name) =>
        node is JsonValue v && v.GetValueKind() == JsonValueKind.Number && v.TryGetValue(out double d) ? (float)d
            : throw new FormatException($"\"{name}\" must be a number");

    private static string OptionName(string? property) => property switch
    {
        nameof(GenerationOptions.MaxNewTokens) => "\"max_tokens\"",
        nameof(GenerationOptions.Temperature) => "\"temperature\"",
        nameof(GenerationOptions.TopK) => "\"top_k\"",
        nameof(GenerationOptions.TopP) => "\"top_p\"",
        nameof(GenerationOptions.RepetitionPenalty) => "\"repetition_penalty\"",
        nameof(GenerationOptions.StopStrings) => "\"stop\"",
        _ => property ?? "an option",
    };

    /// <summary>
    /// Lines split at '\n' (a trailing '\r' removed); unlike ReadLine, a lone '\r' does not end a line. A line over
    /// <see cref="MaxLineChars"/> is skipped to its end and returned as null, so memory stays bounded by the cap.
    /// </summary>
    internal static IEnumerable<string?> ReadLines(TextReader reader, int maxChars = MaxLineChars)
    {
        var sb = new System.Text.StringBuilder();
        bool tooLong = false;
        int c;
        while ((c = reader.Read()) >= 0)
        {
            if (c != '\n')
            {
                if (tooLong) continue;
                if (sb.Length >= maxChars + 1)          // (+1: a '\r' before the newline)
                {
                    tooLong = true;
                    sb.Clear();
                    continue;
                }
                sb.Append((char)c);
                continue;
            }
            yield return tooLong ? null : Trim(sb);
            tooLong = false;
            sb.Clear();
        }
        if (tooLong) yield return null;
        else if (sb.Length > 0) yield return Trim(sb);

        static string Trim(System.Text.StringBuilder sb) => (sb.Length > 0 && sb[^1] == '\r' ? sb.ToString(0, sb.Length - 1) : sb.ToString());
    }
}
