namespace Behemoth.Text;

/// <summary>
/// The files a tokenizer and its configs are read from: either whatever a model directory holds (a checkpoint), or
/// a fixed set of names whose bytes the caller has already read and verified (a package: the files its manifest lists,
/// so that a file dropped beside them is never read, and nothing is read again from disk after it was checked).
/// </summary>
public sealed class TokenizerFiles
{
    private readonly IReadOnlyDictionary<string, byte[]>? _verified;

    private TokenizerFiles(string directory, IReadOnlyDictionary<string, byte[]>? verified)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        Directory = directory;
        _verified = verified;
    }

    /// <summary>The directory the files are in (or were read from), for paths in messages.</summary>
    public string Directory { get; }

    /// <summary>Every tokenizer file in <paramref name="directory"/>, read when needed.</summary>
    public static TokenizerFiles InDirectory(string directory)
    {
        if (!System.IO.Directory.Exists(directory)) throw new DirectoryNotFoundException($"{directory}: no such model or package directory");
        return new(directory, null);
    }

    /// <summary>Only <paramref name="files"/> (file name → its bytes), as read from <paramref name="directory"/> and verified.</summary>
    public static TokenizerFiles Verified(string directory, IReadOnlyDictionary<string, byte[]> files)
    {
        ArgumentNullException.ThrowIfNull(files);
        return new(directory, new Dictionary<string, byte[]>(files, StringComparer.Ordinal));
    }

    /// <summary>The file's path, for messages.</summary>
    public string PathOf(string name) => Path.Combine(Directory, name);

    /// <summary>Whether the file is there.</summary>
    public bool Contains(string name) => _verified?.ContainsKey(name) ?? File.Exists(PathOf(name));

    /// <summary>The file's bytes.</summary>
    /// <exception cref="FileNotFoundException">The file is not there.</exception>
    public byte[] Read(string name)
    {
        if (_verified is null) return Behemoth.Package.PackageFile.ReadInput(PathOf(name));
        return _verified.TryGetValue(name, out var bytes) ? bytes : throw new FileNotFoundException($"{PathOf(name)}: not among the tokenizer's files", PathOf(name));
    }

    /// <summary>The names that end with <paramref name="suffix"/>, in ordinal order.</summary>
    public IReadOnlyList<string> NamesEndingWith(string suffix)
    {
        var names = _verified is not null
            ? _verified.Keys.Where(n => n.EndsWith(suffix, StringComparison.Ordinal))
            : System.IO.Directory.EnumerateFiles(Directory, "*" + suffix).Select(Path.GetFileName).OfType<string>();
        return [.. names.Order(StringComparer.Ordinal)];
    }
}
