using System.Text.Json;

namespace Behemoth.Text;

/// <summary>
/// What a tiktoken rank file does not say about itself: its pre-tokenizer regex and its special tokens. The families
/// Behemoth supports are told apart by the number of ranks, which differs for each.
/// </summary>
/// <remarks>
/// Llama 3 and Llama 4 put their special tokens right after the base vocabulary; their full tables (with the
/// reserved names, so ids decode to the names Meta gives them) are embedded from <c>SpecialTokens/*.json</c>.
/// Qwen's rank file holds 151,643 ranks and the three ChatML tokens follow; Qwen 2.5/3 add more, which a model's
/// tokenizer_config.json lists and the loader then prefers.
/// </remarks>
internal sealed record TiktokenFamily(string Name, int BaseVocabSize, string Pattern, IReadOnlyDictionary<string, int> SpecialTokens, string? Bos, string Eos)
{
    private const string QwenPattern = @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

    private static readonly Lazy<TiktokenFamily> Llama3 = new(() => FromResource("llama3"));
    private static readonly Lazy<TiktokenFamily> Llama4 = new(() => FromResource("llama4"));
    private static readonly TiktokenFamily Qwen = new("qwen", 151_643, QwenPattern,
        new Dictionary<string, int> { ["<|endoftext|>"] = 151_643, ["<|im_start|>"] = 151_644, ["<|im_end|>"] = 151_645 }, null, "<|endoftext|>");

    /// <summary>Rank counts of the supported families, for error messages.</summary>
    public const string Known = "Llama 3: 128,000; Llama 4: 200,000; Qwen: 151,643";

    public static TiktokenFamily? ForRankCount(int ranks) => ranks switch
    {
        128_000 => Llama3.Value,
        200_000 => Llama4.Value,
        151_643 => Qwen,
        _ => null,
    };

    /// <summary>Number of non-empty lines, each one rank.</summary>
    public static int CountRanks(string path) => CountRanks(Behemoth.Package.PackageFile.ReadInput(path));

    /// <summary>As above, over the file's bytes.</summary>
    public static int CountRanks(ReadOnlySpan<byte> bytes)
    {
        int count = 0, start = 0;
        for (int i = 0; i <= bytes.Length; i++)
        {
            if (i < bytes.Length && bytes[i] != (byte)'\n') continue;
            var line = bytes[start..i];
            if (line.Length > 0 && !(line.Length == 1 && line[0] == (byte)'\r')) count++;
            start = i + 1;
        }
        return count;
    }

    private static TiktokenFamily FromResource(string name)
    {
        using var stream = typeof(TiktokenFamily).Assembly.GetManifestResourceStream($"Behemoth.Text.SpecialTokens.{name}.json")
            ?? throw new InvalidOperationException($"embedded special-token table {name}.json is missing from the assembly");
        using var doc = JsonDocument.Parse(stream);
        var root = doc.RootElement;
        int id = root.GetProperty("special_tokens_from_id").GetInt32();
        var special = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var token in root.GetProperty("special_tokens").EnumerateArray())
            special[token.GetString()!] = id++;
        return new TiktokenFamily(name, root.GetProperty("base_vocab_size").GetInt32(), root.GetProperty("pattern").GetString()!, special,
            root.GetProperty("bos").GetString(), root.GetProperty("eos").GetString()!);
    }
}
