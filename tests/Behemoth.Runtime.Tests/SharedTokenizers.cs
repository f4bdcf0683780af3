using System.IO.Compression;
using System.Text.Json;
using Behemoth.Runtime.Text;

namespace Behemoth.Runtime.Tests;

/// <summary>The real tokenizer files of shared/tokenizers, loaded once per test run, and corpus text to feed them.</summary>
public static class SharedTokenizers
{
    public const string MistralV1 = "mistral/mistral-v1-mixtral-8x7b.tokenizer.model";
    public const string MistralV3 = "mistral/mistral_instruct_tokenizer_240323.model.v3";
    public const string Llama2 = "llama2/llama2.tokenizer.model";
    public const string Llama3 = "llama3/llama3.tokenizer.model.tiktoken";
    public const string Llama4 = "llama4/llama4.tokenizer.model.tiktoken";
    public const string Qwen = "qwen/qwen.tiktoken";
    public const string Olmoe = "olmoe/allenai_gpt-neox-olmo-dolma-v1_5.tokenizer.json";

    public static readonly string[] All = [MistralV1, MistralV3, Llama2, Llama3, Llama4, Qwen, Olmoe];

    private static readonly Dictionary<string, Lazy<LoadedTokenizer>> Cache =
        All.ToDictionary(f => f, f => new Lazy<LoadedTokenizer>(() => ModelTokenizer.OpenFile(PathOf(f))));

    public static string PathOf(string file) => Path.Combine(Behemoth.Tests.TestPaths.Shared, "tokenizers", file);

    public static LoadedTokenizer Get(string file) => Cache[file].Value;

    private static readonly Lazy<IReadOnlyList<string>> CorpusLines = new(ReadCorpus);

    /// <summary>The first 40 non-empty texts of each language (en, it, fr, de, es) in shared/corpus/mix.jsonl.gz: 200 in all.</summary>
    public static IReadOnlyList<string> Multilingual => CorpusLines.Value;

    private static List<string> ReadCorpus()
    {
        const int PerLanguage = 40;
        var byLang = new Dictionary<string, List<string>> { ["en"] = [], ["it"] = [], ["fr"] = [], ["de"] = [], ["es"] = [] };
        using var file = File.OpenRead(Path.Combine(Behemoth.Tests.TestPaths.Shared, "corpus", "mix.jsonl.gz"));
        using var reader = new StreamReader(new GZipStream(file, CompressionMode.Decompress));
        while (reader.ReadLine() is { } line && byLang.Values.Any(l => l.Count < PerLanguage))
        {
            using var doc = JsonDocument.Parse(line);
            string lang = doc.RootElement.GetProperty("lang").GetString()!;
            string text = doc.RootElement.GetProperty("text").GetString()!;
            if (text.Trim().Length > 0 && byLang.TryGetValue(lang, out var list) && list.Count < PerLanguage) list.Add(text);
        }
        return byLang.Values.SelectMany(l => l).ToList();
    }
}
