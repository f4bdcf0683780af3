using Microsoft.ML.Tokenizers;

namespace Behemoth.Text;

// Microsoft.ML.Tokenizers' tokenizer, not Behemoth.Runtime.Tokenizer (the wrapper generation uses)
using Tokenizer = Microsoft.ML.Tokenizers.Tokenizer;

/// <summary>
/// A tokenizer loaded from a model directory or package, with what the chat layer needs besides encoding: which file
/// and kind it came from, its special tokens (matched whole in text, so a rendered chat prompt's markers become
/// single ids) and its BOS/EOS.
/// </summary>
public sealed class LoadedTokenizer
{
    internal LoadedTokenizer(Tokenizer tokenizer, string kind, string file, string? family, IReadOnlyDictionary<string, int> specialTokens, string? bos, string? eos)
    {
        Tokenizer = tokenizer;
        Kind = kind;
        File = file;
        Family = family;
        SpecialTokens = specialTokens;
        BosToken = bos is not null && specialTokens.ContainsKey(bos) ? bos : null;
        EosToken = eos is not null && specialTokens.ContainsKey(eos) ? eos : null;
    }

    /// <summary>The Microsoft.ML.Tokenizers tokenizer; it adds no BOS/EOS by itself.</summary>
    public Tokenizer Tokenizer { get; }

    /// <summary>One of <see cref="Behemoth.Package.TokenizerKinds"/>: sentencepiece, tiktoken or huggingface-json.</summary>
    public string Kind { get; }

    /// <summary>The file it was loaded from.</summary>
    public string File { get; }

    /// <summary>For tiktoken files, the family whose regex and special tokens were used (llama3, llama4, qwen); otherwise null.</summary>
    public string? Family { get; }

    /// <summary>Special (and added) tokens with their ids; text containing them encodes each to its single id.</summary>
    public IReadOnlyDictionary<string, int> SpecialTokens { get; }

    /// <summary>The beginning-of-sequence token's text, when the tokenizer has one.</summary>
    public string? BosToken { get; }

    /// <summary>The end-of-sequence token's text, when the tokenizer has one.</summary>
    public string? EosToken { get; }

    /// <summary>
    /// The model's own chat template (Jinja source), from <c>chat_template.jinja</c> or tokenizer_config.json's
    /// <c>chat_template</c>, when the files carry one; <see cref="ChatTemplate.ForTokenizer"/> recognises its family.
    /// </summary>
    public string? ChatTemplateSource { get; internal init; }

    /// <summary>The id of <see cref="BosToken"/>; null when the tokenizer has none.</summary>
    public int? BosTokenId => BosToken is null ? null : SpecialTokens[BosToken];

    /// <summary>The id of <see cref="EosToken"/>; null when the tokenizer has none.</summary>
    public int? EosTokenId => EosToken is null ? null : SpecialTokens[EosToken];

    /// <summary>The id of a special token, or null when this tokenizer does not have it.</summary>
    public int? SpecialTokenId(string token) => SpecialTokens.TryGetValue(token, out int id) ? id : null;

    /// <summary>
    /// Ids that end an assistant turn under <paramref name="template"/>: its stop tokens this vocabulary has, plus EOS.
    /// </summary>
    public IReadOnlyList<int> StopTokenIds(ChatTemplate template)
    {
        ArgumentNullException.ThrowIfNull(template);
        var ids = new List<int>();
        foreach (var token in template.StopTokens)
            if (SpecialTokenId(token) is int id && !ids.Contains(id)) ids.Add(id);
        if (EosTokenId is int eos && !ids.Contains(eos)) ids.Add(eos);
        return ids;
    }
}
