using System.Text;
using System.Text.Json;
using Behemoth.Formats.Errors;
using Behemoth.Package;

namespace Behemoth.Exporter.Pruning;

/// <summary>
/// Text files the commands read documents from: JSON lines with a "text" field (or an "en"/"it" pair, written in
/// behemoth-nano's translation format), or plain text with documents separated by blank lines. The bytes must be
/// UTF-8; anything else is refused naming the file and line, rather than read as replacement characters.
/// </summary>
public static class TextDocuments
{
    public static List<string> Read(string file)
    {
        if (!File.Exists(file)) throw new BehemothException($"{file}: no such file");
        var strict = new UTF8Encoding(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);
        var docs = new List<string>();
        bool jsonl = file.EndsWith(".jsonl", StringComparison.OrdinalIgnoreCase) || file.EndsWith(".json", StringComparison.OrdinalIgnoreCase);
        int line = 0;
        var paragraph = new StringBuilder();
        using var reader = new StreamReader(Behemoth.Package.PackageFile.OpenInput(file), strict, detectEncodingFromByteOrderMarks: true);
        try
        {
            for (string? raw; (raw = reader.ReadLine()) is not null;)
            {
                line++;
                if (!jsonl)
                {
                    if (raw.Trim().Length == 0) Flush();
                    else paragraph.Append(paragraph.Length > 0 ? "\n" : "").Append(raw);
                    continue;
                }
                if (raw.Trim().Length == 0) continue;
                JsonElement row;
                try { row = JsonDocument.Parse(raw).RootElement; }
                catch (JsonException e) { throw new BehemothException($"{file}:{line}: not JSON ({e.Message})"); }
                if (row.ValueKind == JsonValueKind.Object && row.TryGetProperty("text", out var t) && t.ValueKind == JsonValueKind.String)
                    docs.Add(t.GetString()!);
                else if (row.ValueKind == JsonValueKind.Object && row.TryGetProperty("en", out var en) && row.TryGetProperty("it", out var it))
                    docs.Add($"English: {en.GetString()}\nItalian: {it.GetString()}");
                else
                    throw new BehemothException($"{file}:{line}: expected a \"text\" field or an \"en\"/\"it\" pair");
            }
        }
        catch (DecoderFallbackException e)
        {
            throw new BehemothException($"{file}: line {line + 1} is not valid UTF-8 ({e.Message.Split('.')[0]}); convert the file to UTF-8");
        }
        Flush();
        if (docs.Count == 0 || docs.All(d => d.Trim().Length == 0))
            throw new BehemothException($"{file}: holds no text");
        return docs;

        void Flush()
        {
            if (paragraph.Length > 0) docs.Add(paragraph.ToString());
            paragraph.Clear();
        }
    }
}
