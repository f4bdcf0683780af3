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

    /// <summary>
    /// The tokenizer of a package (a directory with manifest.json: exactly the files its manifest's <c>tokenizer</c>
    /// entry lists, each checked against its size and SHA-256, with the package's BOS and EOS ids) or of a model
    /// directory (the files <see cref="ModelTokenizer.Open(string)"/> looks for).
    /// </summary>
    /// <exception cref="Package.PackageFormatException">A package's tokenizer file is missing, altered or unlisted.</exception>
    public static Tokenizer Load(string directory)
    {
        if (!File.Exists(Path.Combine(directory, Package.PackageManifest.FileName))) return new(ModelTokenizer.Open(directory));
        var manifest = Package.PackageReader.ReadManifest(directory);
        return new(OpenPackageTokenizer(directory, manifest, default), manifest.Model.BosTokenId, manifest.Model.EosTokenIds);
    }

    /// <summary>As <see cref="Load(string)"/>, with the beginning- and end-of-sequence ids a config names (a checkpoint's
    /// config.json; null or empty: the tokenizer's own).</summary>
    public static Tokenizer Load(string directory, int? bosTokenId, IReadOnlyList<int>? eosTokenIds) =>
        new(Load(directory).Loaded, bosTokenId, eosTokenIds);

    /// <summary>
    /// The tokenizer the manifest's <c>tokenizer</c> entry names, loaded from the bytes that were checked: each listed
    /// file (the model file and the configs it reads) is read once, checked against the size and SHA-256 in the
    /// manifest's <c>files</c>, and only those bytes are seen by the loader. A file dropped into the package beside
    /// them is never read; the loaded tokenizer must be of the entry's kind.
    /// </summary>
    internal static LoadedTokenizer OpenPackageTokenizer(string packageDirectory, Package.PackageManifest manifest, CancellationToken cancellationToken)
    {
        string manifestPath = Path.Combine(packageDirectory, Package.PackageManifest.FileName);
        if (manifest.Tokenizer is not { } info)
            throw new Package.PackageFormatException(manifestPath, "the package has no tokenizer entry (it was exported without tokenizer files); give the tokenizer in ModelOptions.Tokenizer");
        var bytes = new Dictionary<string, byte[]>(StringComparer.Ordinal);
        foreach (string file in info.Files)
        {
            if (!manifest.Files.TryGetValue(file, out var entry))
                throw new Package.PackageFormatException(manifestPath, $"the tokenizer file '{file}' has no size and SHA-256 in 'files'");
            bytes[file] = Package.PackageFile.ReadAll(Path.Combine(packageDirectory, file), expected: entry, cancellationToken: cancellationToken);
        }
        LoadedTokenizer loaded;
        try
        {
            loaded = ModelTokenizer.Open(TokenizerFiles.Verified(packageDirectory, bytes));
        }
        catch (FileNotFoundException e)
        {
            throw new Package.PackageFormatException(manifestPath, $"the tokenizer entry lists {string.Join(", ", info.Files)}, none of them a tokenizer ({e.Message})");
        }
        if (loaded.Kind != info.Kind)
            throw new Package.PackageFormatException(loaded.File, $"a {loaded.Kind} tokenizer, but the manifest names a {info.Kind} tokenizer in {string.Join(", ", info.Files)}");
        return loaded;
    }

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
