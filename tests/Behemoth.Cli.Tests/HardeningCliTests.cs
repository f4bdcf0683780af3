using Behemoth.Tests;

namespace Behemoth.Cli.Tests;

/// <summary>Issue 19's attacks on the command line that need no package: --force on a foreign folder, huge --threads.</summary>
public sealed class HardeningCliTests
{
    private static BatchCliTests.Result Run(params string[] args) => BatchCliTests.Run(args);

    private static void AssertOneLineError(BatchCliTests.Result r, string expected)
    {
        Assert.True(r.ExitCode == 1, $"exit {r.ExitCode}: {r.Stderr}");
        string line = Assert.Single(r.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.StartsWith("error: ", line);
        Assert.Contains(expected, line);
    }

    [Theory]
    [InlineData("""{"name": "my web app", "start_url": "/", "display": "standalone"}""", "not a valid manifest")]
    [InlineData("""{"format": "behemoth-package", "format_version": 1}""", "missing required properties")]
    [InlineData("""not json at all""", "not a valid manifest")]
    [InlineData(null, "missing")]
    public void Export_force_never_replaces_a_folder_that_is_not_a_behemoth_package(string? manifest, string reason)
    {
        using var dir = new TempDirectory();
        string target = dir.File("webapp");
        Directory.CreateDirectory(target);
        File.WriteAllText(Path.Combine(target, "index.html"), "<html></html>");
        if (manifest is not null) File.WriteAllText(Path.Combine(target, "manifest.json"), manifest);
        var r = Run("export", Path.Combine(TestPaths.RepoRoot, "models", "behemoth-nano"), "--out", target, "--quant", "int4", "--force");
        AssertOneLineError(r, target);
        Assert.Contains("not a Behemoth package, so --force does not replace it", r.Stderr);
        Assert.Contains(reason, r.Stderr);
        Assert.Equal("<html></html>", File.ReadAllText(Path.Combine(target, "index.html")));
        Assert.Equal(manifest is null ? ["index.html"] : ["index.html", "manifest.json"],
            Directory.GetFiles(target).Select(Path.GetFileName).Order(StringComparer.Ordinal));
        Assert.Single(Directory.GetFileSystemEntries(dir.Path));       // no staging folder left behind
    }

    [Fact]
    public void Export_force_replaces_a_behemoth_package()
    {
        using var dir = new TempDirectory();
        string target = dir.File("pkg"), model = Path.Combine(TestPaths.RepoRoot, "models", "behemoth-nano");
        var r = Run("export", model, "--out", target, "--quant", "int4", "--layers", "1");
        Assert.True(r.ExitCode == 0, r.Stderr);
        File.WriteAllText(Path.Combine(target, "stale.txt"), "from the old package");
        r = Run("export", model, "--out", target, "--quant", "int4", "--layers", "1", "--force");
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.True(File.Exists(Path.Combine(target, "manifest.json")));
        Assert.False(File.Exists(Path.Combine(target, "stale.txt")));
        Assert.Single(Directory.GetFileSystemEntries(dir.Path));
    }

    [Theory]
    [InlineData("batch", "--threads", "100000")]
    [InlineData("batch", "--parallel", "100000")]
    [InlineData("bench", "--threads", "100000")]
    [InlineData("batch", "--threads", "-1")]
    [InlineData("bench", "--threads", "-3")]
    public void A_thread_or_worker_count_out_of_bounds_is_one_line_before_anything_loads(string command, string option, string value)
    {
        using var dir = new TempDirectory();
        string[] args = command == "batch"
            ? ["batch", dir.File("no-package"), "--in", dir.File("in.jsonl"), "--out", dir.File("out.jsonl"), option, value]
            : ["bench", dir.File("no-package"), option, value];
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var r = Run(args);
        AssertOneLineError(r, $"{option} {value}");
        Assert.True(clock.Elapsed < TimeSpan.FromMinutes(1), "it took " + clock.Elapsed);
        Assert.False(File.Exists(dir.File("out.jsonl")));
        if (!value.StartsWith('-')) Assert.Contains($"the most is {4 * Environment.ProcessorCount}", r.Stderr);
    }

    [Fact]
    public void An_empty_stop_string_is_one_line_naming_the_option()
    {
        using var dir = new TempDirectory();
        AssertOneLineError(Run("run", dir.File("pkg"), "--prompt", "hi", "--stop", ""), "invalid generation option --stop: must not hold an empty string");
    }

    [Theory]
    [InlineData("nan")]
    [InlineData("1e308")]
    [InlineData("-1")]
    public void A_log_interval_that_is_not_a_number_of_seconds_is_one_line(string value)
    {
        using var dir = new TempDirectory();
        var r = Run("batch", dir.File("no-package"), "--in", dir.File("in.jsonl"), "--out", dir.File("out.jsonl"), "--log-interval", value);
        AssertOneLineError(r, "--log-interval");
        Assert.False(File.Exists(dir.File("out.jsonl")));
    }

    [Fact]
    public void Bench_token_counts_that_overflow_are_one_line()
    {
        using var dir = new TempDirectory();
        AssertOneLineError(Run("bench", dir.File("pkg"), "--prompt-tokens", "2147483647", "--decode-tokens", "2147483647"),
            "--prompt-tokens + --decode-tokens = 4294967294");
    }

    [Fact]
    public void An_eval_window_longer_than_the_model_is_one_line()
    {
        string nano = Path.Combine(TestPaths.RepoRoot, "models", "behemoth-nano");
        string text = Directory.GetFiles(Path.Combine(nano, "eval"), "*.jsonl")[0];
        AssertOneLineError(Run("eval", nano, "--engine", "reference", "--text", text, "--window", "100000000"),
            "--window 100000000 is longer than the model's max_position_embeddings");
    }

    [Fact]
    public void A_memory_budget_too_large_for_64_bits_is_one_line()
    {
        using var dir = new TempDirectory();
        var r = Run("bench", dir.File("pkg"), "--memory-budget", "99999999999999999999GB");
        AssertOneLineError(r, "memory size '99999999999999999999GB' is too large");
    }
}
