namespace Behemoth.Text;

/// <summary>A tokenizer file that is missing, malformed or of a kind the runtime cannot load; the message says what was expected.</summary>
public sealed class TokenizerFormatException(string path, string message, Exception? inner = null) : Behemoth.Package.BehemothException($"{path}: {message}", inner)
{
    /// <summary>The file (or directory) at fault.</summary>
    public string Path { get; } = path;
}
