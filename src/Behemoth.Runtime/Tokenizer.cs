using Behemoth.Text;

namespace Behemoth.Runtime;

/// <summary>
/// A model's tokenizer with what generation needs besides encoding: its beginning- and end-of-sequence ids, its
/// special tokens, and a streaming detokenizer (<see cref="CreateStream"/>). Loaded from a package or model directory
/// (<see cref="Load(string)"/>), or given by <see cref="Model.Tokenizer"/>.
/// </summary>
public sealed class Tokenizer
{
    internal Tokenizer(LoadedTokenizer loaded, int? bosTokenId = null, IReadOnlyList<int>? eosTokenIds = null)
    {
        Loaded = loaded;
        BosTokenId = bosTokenId ?? loaded.BosTokenId;
        EosTokenIds = eosTokenIds is { Count: > 0 } ? eosTokenIds : loaded.EosTokenId is int eos ? [eos] : [];
    }

    /// <summary>The tokenizer of a package or model directory (see <see cref="ModelTokenizer.Open"/> for the files tried).</summary>
    public static Tokenizer Load(string directory) => new(ModelTokenizer.Open(directory));

    /// <summary>As <see cref="Load(string)"/>, with the beginning- and end-of-sequence ids a config names (a checkpoint's
    /// config.json; null or empty: the tokenizer's own).</summary>
    public static Tokenizer Load(string directory, int? bosTokenId, IReadOnlyList<int>? eosTokenIds) =>
        new(ModelTokenizer.Open(directory), bosTokenId, eosTokenIds);

    /// <summary>The loaded file, its kind and special tokens.</summary>
    public LoadedTokenizer Loaded { get; }

    /// <summary>The Microsoft.ML.Tokenizers tokenizer underneath (adds no BOS or EOS by itself).</summary>
    public Microsoft.ML.Tokenizers.Tokenizer Inner => Loaded.Tokenizer;

    /// <summary>The beginning-of-sequence id a prompt starts with, when the model has one.</summary>
    public int? BosTokenId { get; }

    /// <summary>End-of-sequence ids: generation stops at any of them.</summary>
    public IReadOnlyList<int> EosTokenIds { get; }

    /// <summary>Special (and added) tokens with their ids.</summary>
    public IReadOnlyDictionary<string, int> SpecialTokens => Loaded.SpecialTokens;

    /// <summary>The ids of <paramref name="text"/>, preceded by <see cref="BosTokenId"/> when <paramref name="addBos"/> and the model has one.</summary>
    public int[] Encode(string text, bool addBos = false)
    {
        ArgumentNullException.ThrowIfNull(text);
        var ids = Inner.EncodeToIds(text);
        if (!addBos || BosTokenId is not int bos) return [.. ids];
        var withBos = new int[ids.Count + 1];
        withBos[0] = bos;
        for (int i = 0; i < ids.Count; i++) withBos[i + 1] = ids[i];
        return withBos;
    }

    /// <summary>How many ids <paramref name="text"/> encodes to (no BOS).</summary>
    public int CountTokens(string text) => Inner.CountTokens(text);

    /// <summary>The text of <paramref name="ids"/>.</summary>
    public string Decode(IEnumerable<int> ids) => Inner.Decode(ids) ?? "";

    /// <summary>
    /// A detokenizer that turns generated ids into text one id at a time, without decoding the whole output again.
    /// </summary>
    /// <param name="previousToken">The token just before the first one streamed (the prompt's last): SentencePiece
    /// drops a leading space at the start of a text, so decoding starts from it and its own text is cut off.</param>
    public TokenizerStream CreateStream(int? previousToken = null) => new(this, previousToken);
}
