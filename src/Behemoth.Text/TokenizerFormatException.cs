namespace Behemoth.Text;

/// <summary>A tokenizer file that is missing, malformed or of a kind the runtime cannot load; the message says what was expected.</summary>
public sealed class TokenizerFormatException(string path, string message, Exception? inner = null) : Behemoth.Package.BehemothException($"{path}: {message}", inner)
{
    /// <summary>The file (or directory) at fault.</summary>
    public string Path { get; } = path;

    /// <summary>
    /// Whether a parser's exception means its input was malformed. Tokenizer files come from outside, and the
    /// libraries that parse them throw whatever their code hits on a file cut short (a null reference, an index out of
    /// range): all of them are the file's fault, except cancellation, running out of memory and our own errors.
    /// </summary>
    internal static bool IsParseFailure(Exception e) =>
        e is not (OperationCanceledException or OutOfMemoryException or TokenizerFormatException or FileNotFoundException or Behemoth.Package.BehemothException);
}
