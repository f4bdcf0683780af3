namespace Behemoth.Tests;

/// <summary>Where the repository and the read-only shared material (../shared beside it) are.</summary>
public static class TestPaths
{
    public static string RepoRoot { get; } = FindRoot();

    /// <summary>The shared folder: $BEHEMOTH_SHARED, else ../shared next to the repository.</summary>
    public static string Shared { get; } =
        Environment.GetEnvironmentVariable("BEHEMOTH_SHARED") is { Length: > 0 } env ? env : Path.GetFullPath(Path.Combine(RepoRoot, "..", "shared"));

    public static string Golden(string name) => Path.Combine(Shared, "golden", name);

    public static string Variant(string name) => Path.Combine(RepoRoot, "tests", "fixtures", "variants", name);

    public static string Config(string file) => Path.Combine(Shared, "configs", file);

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
