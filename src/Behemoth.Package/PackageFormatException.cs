namespace Behemoth.Package;

/// <summary>A package that cannot be used: missing, tampered or truncated files, or a manifest that does not parse.</summary>
public sealed class PackageFormatException : BehemothException
{
    /// <summary>A problem with <paramref name="path"/>; the message is <c>path: message</c>.</summary>
    /// <param name="path">The file (or package directory) at fault.</param>
    /// <param name="message">What is wrong with it.</param>
    public PackageFormatException(string path, string message) : base($"{path}: {message}")
    {
        Path = path;
        FilePath = path;
    }

    /// <summary>The file (or package directory) at fault.</summary>
    public string Path { get; }
}
