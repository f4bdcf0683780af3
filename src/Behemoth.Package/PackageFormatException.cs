namespace Behemoth.Package;

/// <summary>A package that cannot be used: missing, tampered or truncated files, or a manifest that does not parse.</summary>
public sealed class PackageFormatException(string path, string message) : Exception($"{path}: {message}")
{
    /// <summary>The file (or package directory) at fault.</summary>
    public string Path { get; } = path;
}
