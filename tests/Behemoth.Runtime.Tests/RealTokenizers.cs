using System.Text.Json;
using Behemoth.Text;

namespace Behemoth.Runtime.Tests;

/// <summary>The real tokenizer files of tests/fixtures/tokenizers, loaded once per test run, and corpus text to feed them.</summary>
public static class RealTokenizers
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

    public static string PathOf(string file) => Behemoth.Tests.TestPaths.Tokenizer(file);

    public static LoadedTokenizer Get(string file) => Cache[file].Value;

    private static readonly Lazy<IReadOnlyList<string>> CorpusLines = new(ReadCorpus);

    /// <summary>The first 40 non-empty texts of each language (en, it, fr, de, es) of the training mix: 200 in all
    /// (tests/fixtures/corpus/multilingual-200.jsonl).</summary>
    public static IReadOnlyList<string> Multilingual => CorpusLines.Value;

    private static List<string> ReadCorpus()
    {
        var texts = new List<string>();
        foreach (string line in File.ReadLines(Path.Combine(Behemoth.Tests.TestPaths.Fixtures, "corpus", "multilingual-200.jsonl")))
        {
            using var doc = JsonDocument.Parse(line);
            texts.Add(doc.RootElement.GetProperty("text").GetString()!);
        }
        return texts;
    }
}
