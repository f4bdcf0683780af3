using System.Text;

namespace Behemoth.Package;

/// <summary>
/// The tokenizer kinds a package's manifest names, and the sniffing that tells them apart. Both the exporter (which
/// writes <see cref="TokenizerInfo.Kind"/>) and the runtime (which loads the files) use it, so the two agree.
/// </summary>
/// <remarks>
/// The file name alone is not enough: Meta ships Llama 3 and 4 tiktoken rank files as <c>tokenizer.model</c>, the
/// name SentencePiece uses for its protobuf. A rank file is text, one <c>base64 rank</c> pair a line; a SentencePiece
/// model is a protobuf whose first byte is the tag of field 1 (pieces), 0x0A.
/// </remarks>
public static class TokenizerKinds
{
    /// <summary>A SentencePiece model protobuf (<c>tokenizer.model</c>): Mixtral, Llama 2 style models.</summary>
    public const string SentencePiece = "sentencepiece";
    /// <summary>A tiktoken rank file (<c>*.tiktoken</c>, or Llama 3 / 4's <c>tokenizer.model</c>) with its tokenizer_config.json.</summary>
    public const string Tiktoken = "tiktoken";
    /// <summary>A Hugging Face <c>tokenizer.json</c> (byte-level BPE): Qwen, OLMoE and most other models.</summary>
    public const string HuggingFaceJson = "huggingface-json";

    /// <summary>True when the file starts like a tiktoken rank file: a base64 token, one space, a decimal rank.</summary>
    public static bool LooksLikeTiktoken(string path)
    {
        Span<byte> head = stackalloc byte[256];
        int n;
        using (var stream = PackageFile.OpenInput(path))
            n = stream.ReadAtLeast(head, head.Length, throwOnEndOfStream: false);
        return LooksLikeTiktoken(head[..n]);
    }

    /// <summary>As above, over the file's bytes (the first line is what is looked at).</summary>
    public static bool LooksLikeTiktoken(ReadOnlySpan<byte> bytes)
    {
        var head = bytes[..Math.Min(bytes.Length, 256)];
        int n = head.Length;
        int newline = head[..n].IndexOf((byte)'\n');
        var line = Encoding.ASCII.GetString(newline >= 0 ? head[..newline] : head[..n]).TrimEnd('\r');
        int space = line.IndexOf(' ', StringComparison.Ordinal);
        if (space <= 0 || space == line.Length - 1) return false;
        foreach (char c in line.AsSpan(0, space))
            if (!(char.IsAsciiLetterOrDigit(c) || c is '+' or '/' or '=')) return false;
        foreach (char c in line.AsSpan(space + 1))
            if (!char.IsAsciiDigit(c)) return false;
        return true;
    }

    /// <summary>The kind of a <c>tokenizer.model</c>: tiktoken when its content says so, SentencePiece otherwise.</summary>
    public static string OfTokenizerModel(string path) => LooksLikeTiktoken(path) ? Tiktoken : SentencePiece;

    /// <summary>
    /// The manifest's kind for the tokenizer files of <paramref name="directory"/>, in the order the runtime loads
    /// them: a tokenizer.model (SentencePiece, or tiktoken ranks under that name), then *.tiktoken, then tokenizer.json.
    /// </summary>
    public static string Detect(string directory, IReadOnlyCollection<string> files)
    {
        if (files.Contains("tokenizer.model")) return OfTokenizerModel(Path.Combine(directory, "tokenizer.model"));
        if (files.Any(f => f.EndsWith(".tiktoken", StringComparison.Ordinal))) return Tiktoken;
        return HuggingFaceJson;
    }
}
