using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.ML.Tokenizers;

namespace Behemoth.Text;

// Microsoft.ML.Tokenizers' tokenizer, not Behemoth.Runtime.Tokenizer (the wrapper generation uses)
using Tokenizer = Microsoft.ML.Tokenizers.Tokenizer;

/// <summary>
/// Builds a byte-level BPE tokenizer (GPT-2, GPT-NeoX/OLMo, Llama 3/4 and Qwen 2 exports) from a Hugging Face
/// <c>tokenizer.json</c>. Microsoft.ML.Tokenizers 2.0.1 has no loader for the format, but its <see cref="BpeTokenizer"/>
/// does the work once given the vocabulary, the merges, the pre-tokenizer regex and the added tokens.
/// </summary>
/// <remarks>
/// Supported: model <c>BPE</c>; pre-tokenizer <c>ByteLevel</c> (with its GPT-2 regex when <c>use_regex</c>), a
/// <c>Split</c> regex, or a <c>Sequence</c> of them; normalizer none or <c>NFC</c>; merges as "a b" strings or [a, b]
/// pairs. Everything else (Metaspace/SentencePiece-style BPE with byte fallback, WordPiece, Unigram) is refused with
/// the reason. <c>ignore_merges</c> (Llama 3) is not honoured: a word found whole in the vocabulary is then still
/// merged pair by pair, which gives the same ids for the vocabularies tested here.
/// </remarks>
internal static class HuggingFaceTokenizerJson
{
    /// <summary>The regex of GPT-2's byte-level pre-tokenizer, which ByteLevel applies when use_regex is true.</summary>
    private const string Gpt2Pattern = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

    public static (Tokenizer Tokenizer, Dictionary<string, int> AddedTokens) Load(string path) => Load(path, Behemoth.Package.PackageFile.ReadInput(path));

    /// <summary>From the file's bytes (<paramref name="path"/> names it in errors).</summary>
    public static (Tokenizer Tokenizer, Dictionary<string, int> AddedTokens) Load(string path, byte[] bytes)
    {
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(bytes);
        }
        catch (JsonException e)
        {
            throw new TokenizerFormatException(path, "not valid JSON (expected a Hugging Face tokenizer.json): " + e.Message, e);
        }
        using (doc)
        {
            var root = doc.RootElement;
            if (!root.TryGetProperty("model", out var model) || model.ValueKind != JsonValueKind.Object)
                throw new TokenizerFormatException(path, "no \"model\" object; expected a Hugging Face tokenizer.json");
            string type = model.TryGetProperty("type", out var t) && t.GetString() is { } s ? s : "BPE";
            if (type != "BPE")
                throw new TokenizerFormatException(path, $"model type '{type}' is not supported; expected byte-level BPE");

            var (pattern, byteLevel) = PreTokenizerOf(path, root);
            if (!byteLevel)
                throw new TokenizerFormatException(path, "the BPE model is not byte-level (no ByteLevel pre-tokenizer); SentencePiece-style BPE loads from tokenizer.model");
            var normalizer = NormalizerOf(path, root);

            var vocab = ReadVocab(path, model);
            var merges = ReadMerges(path, model);
            var added = ReadAddedTokens(path, root);
            var options = new BpeOptions(vocab)
            {
                Merges = merges,
                ByteLevel = true,
                SpecialTokens = added,
                PreTokenizer = new RegexPreTokenizer(new Regex(pattern, RegexOptions.Compiled), added),
                Normalizer = normalizer,
                UnknownToken = OptionalString(model, "unk_token"),
                ContinuingSubwordPrefix = OptionalString(model, "continuing_subword_prefix"),
                EndOfWordSuffix = OptionalString(model, "end_of_word_suffix"),
            };
            try
            {
                return (BpeTokenizer.Create(options), added);
            }
            catch (Exception e) when (TokenizerFormatException.IsParseFailure(e))
            {
                throw new TokenizerFormatException(path, "Microsoft.ML.Tokenizers refused the BPE vocabulary or merges: " + e.Message, e);
            }
        }
    }

    /// <summary>The split regex and whether bytes are mapped to GPT-2's printable alphabet.</summary>
    private static (string Pattern, bool ByteLevel) PreTokenizerOf(string path, JsonElement root)
    {
        string? pattern = null;
        bool byteLevel = false;
        void Visit(JsonElement p)
        {
            string type = p.GetProperty("type").GetString() ?? "";
            switch (type)
            {
                case "Sequence":
                    foreach (var inner in p.GetProperty("pretokenizers").EnumerateArray()) Visit(inner);
                    break;
                case "ByteLevel":
                    byteLevel = true;
                    if (p.TryGetProperty("add_prefix_space", out var prefix) && prefix.ValueKind == JsonValueKind.True)
                        throw new TokenizerFormatException(path, "ByteLevel add_prefix_space=true is not supported");
                    if (p.TryGetProperty("use_regex", out var useRegex) && useRegex.ValueKind != JsonValueKind.False)
                        pattern ??= Gpt2Pattern;
                    break;
                case "Split":
                    if (pattern is not null && pattern != Gpt2Pattern)
                        throw new TokenizerFormatException(path, "more than one Split pre-tokenizer is not supported");
                    var pat = p.GetProperty("pattern");
                    pattern = pat.TryGetProperty("Regex", out var regex) ? regex.GetString()
                        : pat.TryGetProperty("String", out var literal) ? Regex.Escape(literal.GetString() ?? "")
                        : throw new TokenizerFormatException(path, "Split pre-tokenizer without a Regex or String pattern");
                    if (p.TryGetProperty("behavior", out var behavior) && behavior.GetString() != "Isolated")
                        throw new TokenizerFormatException(path, $"Split behavior '{behavior.GetString()}' is not supported; expected Isolated");
                    break;
                default:
                    throw new TokenizerFormatException(path, $"pre-tokenizer '{type}' is not supported; expected ByteLevel, Split or a Sequence of them");
            }
        }
        if (root.TryGetProperty("pre_tokenizer", out var pre) && pre.ValueKind == JsonValueKind.Object) Visit(pre);
        return (pattern ?? Gpt2Pattern, byteLevel);
    }

    private static Normalizer? NormalizerOf(string path, JsonElement root)
    {
        if (!root.TryGetProperty("normalizer", out var n) || n.ValueKind == JsonValueKind.Null) return null;
        string type = n.GetProperty("type").GetString() ?? "";
        return type switch
        {
            "NFC" => NfcNormalizer.Instance,
            "Sequence" when n.GetProperty("normalizers").GetArrayLength() == 0 => null,
            _ => throw new TokenizerFormatException(path, $"normalizer '{type}' is not supported; expected none or NFC"),
        };
    }

    private static List<KeyValuePair<string, int>> ReadVocab(string path, JsonElement model)
    {
        if (!model.TryGetProperty("vocab", out var vocab) || vocab.ValueKind != JsonValueKind.Object)
            throw new TokenizerFormatException(path, "model.vocab must be an object of token → id");
        var list = new List<KeyValuePair<string, int>>();
        foreach (var entry in vocab.EnumerateObject())
        {
            if (entry.Value.ValueKind != JsonValueKind.Number || !entry.Value.TryGetInt32(out int id))
                throw new TokenizerFormatException(path, $"model.vocab entry '{entry.Name}' has no integer id");
            list.Add(new(entry.Name, id));
        }
        return list;
    }

    /// <summary>Merges as "a b" lines, whether the file writes them that way or as [a, b] pairs (tokenizers ≥ 0.20).</summary>
    private static List<string> ReadMerges(string path, JsonElement model)
    {
        if (!model.TryGetProperty("merges", out var merges) || merges.ValueKind != JsonValueKind.Array)
            throw new TokenizerFormatException(path, "model.merges must be an array");
        var list = new List<string>(merges.GetArrayLength());
        foreach (var m in merges.EnumerateArray())
        {
            if (m.ValueKind == JsonValueKind.String) list.Add(m.GetString()!);
            else if (m.ValueKind == JsonValueKind.Array && m.GetArrayLength() == 2 && m[0].GetString() is { } a && m[1].GetString() is { } b)
            {
                // The "a b" form cannot hold a space inside a token; byte-level vocabularies write spaces as 'Ġ'.
                if (a.Contains(' ', StringComparison.Ordinal) || b.Contains(' ', StringComparison.Ordinal))
                    throw new TokenizerFormatException(path, $"merge [\"{a}\", \"{b}\"] contains a space, which Microsoft.ML.Tokenizers' merge format cannot express");
                list.Add(a + " " + b);
            }
            else throw new TokenizerFormatException(path, $"model.merges entry {list.Count} is neither \"a b\" nor [\"a\", \"b\"]");
        }
        return list;
    }

    /// <summary>
    /// All added tokens, longest first. They are matched in the text before BPE runs, as Hugging Face does (OLMo's
    /// runs of spaces are added tokens too), and Microsoft.ML.Tokenizers tries them in dictionary order, so the
    /// order makes the longest one win where they overlap.
    /// </summary>
    private static Dictionary<string, int> ReadAddedTokens(string path, JsonElement root)
    {
        var tokens = new List<(string Content, int Id)>();
        if (root.TryGetProperty("added_tokens", out var added) && added.ValueKind == JsonValueKind.Array)
            foreach (var t in added.EnumerateArray())
            {
                if (t.GetProperty("content").GetString() is not { Length: > 0 } content || !t.GetProperty("id").TryGetInt32(out int id))
                    throw new TokenizerFormatException(path, "added_tokens entries need a non-empty content and an integer id");
                tokens.Add((content, id));
            }
        var dict = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var (content, id) in tokens.OrderByDescending(x => x.Content.Length).ThenBy(x => x.Id))
            dict[content] = id;
        return dict;
    }

    private static string? OptionalString(JsonElement e, string name) =>
        e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;

    /// <summary>Unicode NFC, the normalizer of GPT-NeoX/OLMo tokenizers.</summary>
    private sealed class NfcNormalizer : Normalizer
    {
        public static readonly NfcNormalizer Instance = new();

        public override string Normalize(string original) => original.IsNormalized(NormalizationForm.FormC) ? original : original.Normalize(NormalizationForm.FormC);

        public override string Normalize(ReadOnlySpan<char> original) => Normalize(original.ToString());
    }
}
