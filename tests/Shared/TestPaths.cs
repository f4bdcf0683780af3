namespace Behemoth.Tests;

/// <summary>
/// Where the repository's fixtures are, and the optional shared material (../shared beside the repository, or
/// $BEHEMOTH_SHARED). Every test reads the repository's own copies; the shared folder only feeds the extra
/// cross-checks, which are skipped, never failed, when it is absent.
/// </summary>
public static class TestPaths
{
    public static string RepoRoot { get; } = FindRoot();

    public static string Fixtures { get; } = Path.Combine(RepoRoot, "tests", "fixtures");

    /// <summary>A golden set made by tools/oracle (tests/fixtures/golden/NAME).</summary>
    public static string Golden(string name) => Path.Combine(Fixtures, "golden", name);

    public static string Variant(string name) => Path.Combine(Fixtures, "variants", name);

    /// <summary>A published model config.json (tests/fixtures/configs).</summary>
    public static string Config(string file) => Path.Combine(Fixtures, "configs", file);

    /// <summary>A real tokenizer file (tests/fixtures/tokenizers).</summary>
    public static string Tokenizer(string file) => Path.Combine(Fixtures, "tokenizers", file);

    /// <summary>The shared folder when it exists: $BEHEMOTH_SHARED, else ../shared next to the repository; null otherwise.</summary>
    public static string? Shared { get; } = FindShared();

    /// <summary>Why a shared cross-check is skipped ("" when the shared folder is there).</summary>
    public static string SharedMissing => Shared is null
        ? "no shared folder (../shared beside the repository or $BEHEMOTH_SHARED): the independent cross-check is skipped"
        : "";

    /// <summary>A golden set of the shared folder (an independent PyTorch implementation), when present.</summary>
    public static string? SharedGolden(string name) =>
        Shared is { } s && File.Exists(Path.Combine(s, "golden", name, "config.json")) ? Path.Combine(s, "golden", name) : null;

    private static string? FindShared()
    {
        string? env = Environment.GetEnvironmentVariable("BEHEMOTH_SHARED");
        string dir = env is { Length: > 0 } ? Path.GetFullPath(env) : Path.GetFullPath(Path.Combine(RepoRoot, "..", "shared"));
        return Directory.Exists(dir) ? dir : null;
    }

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "Behemoth.sln")))
                return dir.FullName;
        throw new InvalidOperationException("Behemoth.sln not found above " + AppContext.BaseDirectory);
    }
}

/// <summary>A directory under the system temp folder, deleted with the test.</summary>
public sealed class TempDirectory : IDisposable
{
    public TempDirectory()
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "behemoth-test-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Path);
    }

    public string Path { get; }

    public string File(string name) => System.IO.Path.Combine(Path, name);

    public void Dispose()
    {
        try { Directory.Delete(Path, recursive: true); } catch (IOException) { }
    }
}
