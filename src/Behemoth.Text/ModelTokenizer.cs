using Behemoth.Package;
using Microsoft.ML.Tokenizers;

namespace Behemoth.Text;

// Microsoft.ML.Tokenizers' tokenizer, not Behemoth.Runtime.Tokenizer (the wrapper generation uses)
using Tokenizer = Microsoft.ML.Tokenizers.Tokenizer;

/// <summary>
/// The tokenizer shipped with a model directory or package, through Microsoft.ML.Tokenizers. Looked for in this order:
/// <list type="number">
/// <item><c>tokenizer.model</c>: a SentencePiece protobuf (Llama 2, Mistral, Mixtral, behemoth-nano), or tiktoken
/// ranks under that name (Meta's Llama 3 and 4 <c>original/</c> files), told apart by content;</item>
/// <item><c>*.tiktoken</c>: tiktoken ranks (Qwen's <c>qwen.tiktoken</c>);</item>
/// <item><c>tokenizer.json</c>: a Hugging Face byte-level BPE (OLMo/OLMoE, GPT-NeoX, Llama 3/4 and Qwen 2 exports).</item>
/// </list>
/// A SentencePiece tokenizer.model wins over tokenizer.json because Mistral's tokenizer.json is SentencePiece-style
/// BPE (byte fallback), which only the .model loads faithfully.
/// </summary>
/// <remarks>
/// No BOS or EOS is added when encoding; callers (and chat templates) add them. Special tokens written in the text
/// ("&lt;s&gt;", "&lt;|eot_id|&gt;") encode to their single ids. They come from tokenizer_config.json's
/// added_tokens_decoder when the directory has one, else from the file itself (SentencePiece control pieces,
/// tokenizer.json added_tokens) or, for tiktoken, from the family recognised by the number of ranks.
/// </remarks>
public static class ModelTokenizer
{
    /// <summary>The tokenizer of <paramref name="directory"/> (a model directory or a package).</summary>
    public static Tokenizer Load(string directory) => Open(directory).Tokenizer;

    /// <summary>The tokenizer of <paramref name="directory"/> with its kind, file and special tokens.</summary>
    /// <exception cref="FileNotFoundException">No tokenizer file is in the directory.</exception>
    /// <exception cref="TokenizerFormatException">A tokenizer file is malformed or of an unsupported kind.</exception>
    public static LoadedTokenizer Open(string directory)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        return Open(TokenizerFiles.InDirectory(directory));
    }

    /// <summary>The tokenizer among <paramref name="files"/> (in the order above), with its configs from the same files.</summary>
    /// <exception cref="FileNotFoundException">No tokenizer file is among them.</exception>
    /// <exception cref="TokenizerFormatException">A tokenizer file is malformed or of an unsupported kind.</exception>
    public static LoadedTokenizer Open(TokenizerFiles files)
    {
        ArgumentNullException.ThrowIfNull(files);
        var config = TokenizerConfigFiles.Read(files);
        if (files.Contains("tokenizer.model")) return Load(files, "tokenizer.model", config);
        var tiktoken = files.NamesEndingWith(".tiktoken");
        if (tiktoken.Count > 1)
            throw new TokenizerFormatException(files.Directory, $"{tiktoken.Count} *.tiktoken files ({string.Join(", ", tiktoken)}); expected one");
        if (tiktoken.Count == 1) return Load(files, tiktoken[0], config);
        if (files.Contains("tokenizer.json")) return Load(files, "tokenizer.json", config);
        throw new FileNotFoundException($"{files.Directory}: no tokenizer (expected tokenizer.model, a *.tiktoken file or tokenizer.json)");
    }

    /// <summary>Loads one tokenizer file, telling its kind from its name and content.</summary>
    public static LoadedTokenizer OpenFile(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: no such tokenizer file", path);
        var files = TokenizerFiles.InDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        return Load(files, Path.GetFileName(path), TokenizerConfigFiles.Read(files));
    }

    private static LoadedTokenizer Load(TokenizerFiles files, string name, TokenizerConfigFiles config)
    {
        string path = files.PathOf(name);
        byte[] bytes = files.Read(name);
        if (name.EndsWith(".json", StringComparison.OrdinalIgnoreCase)) return LoadHuggingFaceJson(path, bytes, config);
        return TokenizerKinds.LooksLikeTiktoken(bytes) ? LoadTiktoken(path, bytes, config) : LoadSentencePiece(path, bytes, config);
    }

    private static LoadedTokenizer LoadSentencePiece(string path, byte[] bytes, TokenizerConfigFiles config)
    {
        var special = config.AddedTokens ?? SentencePieceModelFile.ReadSpecialPieces(path, bytes);
        try
        {
            using var stream = new MemoryStream(bytes, writable: false);
            var tokenizer = LlamaTokenizer.Create(stream, addBeginOfSentence: false, addEndOfSentence: false, specialTokens: special);
            return new LoadedTokenizer(tokenizer, TokenizerKinds.SentencePiece, path, null, special,
                config.Bos ?? tokenizer.BeginningOfSentenceToken, config.Eos ?? tokenizer.EndOfSentenceToken) { ChatTemplateSource = config.ChatTemplate };
        }
        catch (Exception e) when (TokenizerFormatException.IsParseFailure(e))
        {
            throw new TokenizerFormatException(path, "Microsoft.ML.Tokenizers could not load it as a SentencePiece BPE model: " + e.Message, e);
        }
    }

    private static LoadedTokenizer LoadTiktoken(string path, byte[] bytes, TokenizerConfigFiles config)
    {
        int ranks = TiktokenFamily.CountRanks(bytes);
        var family = TiktokenFamily.ForRankCount(ranks)
            ?? throw new TokenizerFormatException(path, $"{ranks:N0} tiktoken ranks match no known vocabulary ({TiktokenFamily.Known}), so its regex and special tokens are unknown");
        var special = config.AddedTokens ?? family.SpecialTokens;
        try
        {
            var preTokenizer = new RegexPreTokenizer(new System.Text.RegularExpressions.Regex(family.Pattern, System.Text.RegularExpressions.RegexOptions.Compiled), special);
            using var stream = new MemoryStream(bytes, writable: false);
            var tokenizer = TiktokenTokenizer.Create(stream, preTokenizer, normalizer: null, specialTokens: special);
            return new LoadedTokenizer(tokenizer, TokenizerKinds.Tiktoken, path, family.Name, special, config.Bos ?? family.Bos, config.Eos ?? family.Eos)
            {
                ChatTemplateSource = config.ChatTemplate,
            };
        }
        catch (Exception e) when (TokenizerFormatException.IsParseFailure(e))
        {
            throw new TokenizerFormatException(path, "not a valid tiktoken rank file (expected lines of 'base64 rank'): " + e.Message, e);
        }
    }

    private static LoadedTokenizer LoadHuggingFaceJson(string path, byte[] bytes, TokenizerConfigFiles config)
    {
        var (tokenizer, added) = HuggingFaceTokenizerJson.Load(path, bytes);
        // tokenizer.json's own added_tokens are authoritative for matching; the config only names BOS/EOS.
        return new LoadedTokenizer(tokenizer, TokenizerKinds.HuggingFaceJson, path, null, added, config.Bos, config.Eos ?? DefaultEos(added))
        {
            ChatTemplateSource = config.ChatTemplate,
        };
    }

    private static string? DefaultEos(IReadOnlyDictionary<string, int> added) =>
        added.ContainsKey("<|endoftext|>") ? "<|endoftext|>" : null;
}
