using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using Behemoth.Tests;

namespace Behemoth.Cli.Tests;

/// <summary>behemoth-nano exported at int4 once for the batch tests (the golden checkpoints have no tokenizer).</summary>
public sealed class NanoPackageFixture : IDisposable
{
    private readonly TempDirectory _dir = new();

    public NanoPackageFixture()
    {
        Package = _dir.File("nano-int4");
        var r = BatchCliTests.Run("export", Path.Combine(TestPaths.RepoRoot, "models", "behemoth-nano"), "--out", Package, "--quant", "int4");
        if (r.ExitCode != 0) throw new InvalidOperationException("export of behemoth-nano failed: " + r.Stderr);
    }

    public string Package { get; }

    public void Dispose() => _dir.Dispose();
}

/// <summary><c>behemoth batch</c> and <c>batch-merge</c> as processes: bad lines, kills and restarts, shards.</summary>
public sealed class BatchCliTests(NanoPackageFixture nano) : IClassFixture<NanoPackageFixture>
{
    internal sealed record Result(int ExitCode, string Stdout, string Stderr);

    internal static Result Run(params string[] args)
    {
        using var process = Process.Start(Start(args))!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        process.WaitForExit();
        return new Result(process.ExitCode, stdout.Result, stderr.Result);
    }

    private static ProcessStartInfo Start(string[] args)
    {
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "behemoth.dll"));
        foreach (var a in args) start.ArgumentList.Add(a);
        return start;
    }

    /// <summary>Prompts with string and number ids; every fifth samples at temperature 0.9 with its own seed.</summary>
    private static string WritePrompts(TempDirectory dir, int count)
    {
        string[] sentences = ["Good morning, how are you?", "The cat is on the table.", "Where is the station?", "It is raining today.", "My brother lives in Rome."];
        var lines = Enumerable.Range(0, count).Select(i =>
        {
            var line = new JsonObject { ["id"] = i % 3 == 0 ? JsonValue.Create($"q-{i}") : JsonValue.Create(i), ["prompt"] = $"English: {sentences[i % sentences.Length]}\nItalian:" };
            if (i % 5 == 4) (line["temperature"], line["seed"]) = (0.9, 1000 + i);
            return line.ToJsonString();
        });
        string path = dir.File("prompts.jsonl");
        File.WriteAllLines(path, lines);
        return path;
    }

    /// <summary>Record key → everything but the timing, for comparing runs.</summary>
    private static Dictionary<string, string> Outputs(string path)
    {
        var outputs = new Dictionary<string, string>();
        foreach (string text in File.ReadAllLines(path))
        {
            var record = JsonNode.Parse(text)!.AsObject();
            record.Remove("ms");
            string key = record["line"] is { } line ? "line " + line.ToJsonString() : record["id"]!.ToJsonString();
            Assert.True(outputs.TryAdd(key, record.ToJsonString()), $"{key} is in {path} twice");
        }
        return outputs;
    }

    private static int CountLines(string path)
    {
        if (!File.Exists(path)) return 0;
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        int count = 0;
        for (int b; (b = stream.ReadByte()) >= 0;) if (b == '\n') count++;
        return count;
    }

    [Fact]
    public void Every_line_gets_a_result_or_an_error_record_and_bad_lines_do_not_stop_the_job()
    {
        using var dir = new TempDirectory();
        string input = dir.File("in.jsonl"), output = dir.File("out.jsonl");
        File.WriteAllLines(input,
        [
            """{"id": "a", "prompt": "English: Thank you.\nItalian:", "max_tokens": 5}""",
            """{"id": 1, "prompt": "English: Thank you.\nItalian:"}""",
            "{not json",
            """{"id": "a", "prompt": "the same id again"}""",
            """{"id": "b"}""",
            """{"id": "c", "prompt": "x", "top_k": -2}""",
            new JsonObject { ["id"] = "d", ["prompt"] = string.Join(' ', Enumerable.Repeat("word", 2100)) }.ToJsonString(),
        ]);
        var r = Run("batch", nano.Package, "--in", input, "--out", output, "--max-tokens", "8", "--provider", "cpu");
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Contains("7/7 lines", r.Stderr);             // the plain progress log (stderr is not a terminal here)
        var records = File.ReadAllLines(output).Select(l => JsonNode.Parse(l)!.AsObject()).ToDictionary(o => o["line"] is { } n ? "line " + n : o["id"]!.ToJsonString());
        Assert.Equal(7, records.Count);
        var a = records["\"a\""];
        Assert.InRange(a["tokens"]!.GetValue<int>(), 1, 5);
        Assert.False(string.IsNullOrEmpty(a["output"]!.GetValue<string>()));
        Assert.True(a["ms"]!.GetValue<long>() >= 0);
        Assert.Equal(["id", "output", "tokens", "ms"], a.Select(p => p.Key));
        Assert.InRange(records["1"]["tokens"]!.GetValue<int>(), 1, 8);
        Assert.Contains("malformed JSON", records["line 3"]["error"]!.GetValue<string>());
        Assert.Equal("duplicate id: line 1 has the same id and wins", records["line 4"]["error"]!.GetValue<string>());
        Assert.Equal("the line has no \"prompt\"", records["\"b\""]["error"]!.GetValue<string>());
        Assert.Contains("\"top_k\" must not be negative", records["\"c\""]["error"]!.GetValue<string>());
        Assert.Contains("context of 2048", records["\"d\""]["error"]!.GetValue<string>());

        // a rerun of the finished job has nothing to do and changes nothing
        string before = File.ReadAllText(output);
        r = Run("batch", nano.Package, "--in", input, "--out", output, "--max-tokens", "8", "--provider", "cpu");
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Contains("0 this run", r.Stderr);
        Assert.Equal(before, File.ReadAllText(output));
    }

    [Fact]
    public void A_job_killed_again_and_again_and_rerun_ends_with_every_id_once_and_the_outputs_of_a_clean_run()
    {
        using var dir = new TempDirectory();
        string input = WritePrompts(dir, 150);
        string[] common = ["--in", input, "--max-tokens", "24", "--parallel", "2", "--provider", "cpu"];
        string clean = dir.File("clean.jsonl"), resumed = dir.File("resumed.jsonl");
        var r = Run(["batch", nano.Package, "--out", clean, .. common]);
        Assert.True(r.ExitCode == 0, r.Stderr);

        int kills = 0;
        for (int attempt = 0; attempt < 10 && kills < 3; attempt++)
        {
            int before = CountLines(resumed);
            using var process = Process.Start(Start(["batch", nano.Package, "--out", resumed, .. common]))!;
            _ = process.StandardOutput.ReadToEndAsync();
            _ = process.StandardError.ReadToEndAsync();
            var clock = Stopwatch.StartNew();
            while (!process.HasExited && CountLines(resumed) < before + 5 && clock.Elapsed < TimeSpan.FromMinutes(2)) Thread.Sleep(5);
            if (process.HasExited) break;
            process.Kill();                                  // SIGKILL: no chance to flush or clean up
            process.WaitForExit();
            kills++;
            if (kills == 2) File.AppendAllText(resumed, """{"id":"q-999","output":"torn by a kill in the middle of a wri""");
        }
        Assert.True(kills >= 3, $"the job finished before it could be killed 3 times ({kills})");
        Assert.True(CountLines(resumed) < 150, "nothing was left to resume");

        r = Run(["batch", nano.Package, "--out", resumed, .. common]);
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Contains("resuming", r.Stderr);
        Assert.EndsWith("\n", File.ReadAllText(resumed));
        Assert.Equal(150, File.ReadAllLines(resumed).Length);
        Assert.Equal(Outputs(clean), Outputs(resumed));     // every id once (Outputs asserts it), the same text
    }

    [Fact]
    public async Task Shards_run_as_separate_processes_merge_into_the_results_of_one_process()
    {
        using var dir = new TempDirectory();
        string input = WritePrompts(dir, 30);
        File.AppendAllLines(input, ["""{"id": 4, "prompt": "a repeated id"}""", "not json"]);
        string single = dir.File("single.jsonl");
        var r = Run("batch", nano.Package, "--in", input, "--out", single, "--max-tokens", "12", "--parallel", "2", "--provider", "cpu");
        Assert.True(r.ExitCode == 0, r.Stderr);

        const int shards = 3;
        var processes = Enumerable.Range(0, shards).Select(i => Task.Run(() =>
            Run("batch", nano.Package, "--in", input, "--out", dir.File($"shard-{i}.jsonl"), "--max-tokens", "12", "--shard", $"{i}/{shards}", "--provider", "cpu"))).ToArray();
        foreach (var p in await Task.WhenAll(processes)) Assert.True(p.ExitCode == 0, p.Stderr);
        var sizes = Enumerable.Range(0, shards).Select(i => CountLines(dir.File($"shard-{i}.jsonl"))).ToArray();
        Assert.All(sizes, n => Assert.True(n > 0, $"a shard got no lines: {string.Join(", ", sizes)}"));

        string merged = dir.File("merged.jsonl");
        r = Run(["batch-merge", "--out", merged, "--in", input, .. Enumerable.Range(0, shards).Select(i => dir.File($"shard-{i}.jsonl"))]);
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Equal(32, File.ReadAllLines(merged).Length);
        Assert.Equal(Outputs(single), Outputs(merged));
        // input order: the merged file lists the ids as the prompts file does
        var ids = File.ReadAllLines(merged).Select(l => JsonNode.Parse(l)!["id"]?.ToJsonString() ?? "null").ToArray();
        var expected = File.ReadAllLines(input).Select(l => l.StartsWith('{') ? JsonNode.Parse(l)!["id"]!.ToJsonString() : "null").ToArray();
        Assert.Equal(expected, ids);

        // a shard merged twice is refused: ids would appear twice
        r = Run("batch-merge", "--out", dir.File("bad.jsonl"), dir.File("shard-0.jsonl"), dir.File("shard-0.jsonl"));
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("has a record in both", r.Stderr);
    }

    [Fact]
    public void A_results_file_from_another_shard_is_refused_instead_of_mixed()
    {
        using var dir = new TempDirectory();
        string input = WritePrompts(dir, 12), output = dir.File("out.jsonl");
        Assert.Equal(0, Run("batch", nano.Package, "--in", input, "--out", output, "--max-tokens", "4", "--shard", "0/2", "--provider", "cpu").ExitCode);
        var r = Run("batch", nano.Package, "--in", input, "--out", output, "--max-tokens", "4", "--shard", "1/2", "--provider", "cpu");
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("not a line of this job's shard 1/2", r.Stderr);
        r = Run("batch", nano.Package, "--in", input, "--out", output, "--shard", "2/2");
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("0 ≤ i < N", r.Stderr);
    }

    [Fact]
    public void A_second_job_on_the_results_file_through_a_symlink_or_a_hard_link_is_refused_in_another_process()
    {
        using var dir = new TempDirectory();
        string input = WritePrompts(dir, 3), real = dir.File("out.jsonl"), symlink = dir.File("sym.jsonl"), hard = dir.File("hard.jsonl");
        using (var holder = Behemoth.Runtime.Batch.BatchResultFile.Open(real))     // the first job, in this process
        {
            File.CreateSymbolicLink(symlink, real);
            string[] links = [symlink];
            if (!OperatingSystem.IsWindows())
            {
                using (var ln = Process.Start("ln", [real, hard])!) ln.WaitForExit();
                links = [symlink, hard];
            }
            foreach (string link in links)
            {
                var r = Run("batch", nano.Package, "--in", input, "--out", link, "--max-tokens", "4", "--provider", "cpu");
                Assert.True(r.ExitCode == 1, r.Stderr);
                Assert.Contains("another job is writing this results file", r.Stderr);
            }
            Assert.Equal(0, CountLines(real));
        }
        // once the first job is done, the same command through the link runs
        var ok = Run("batch", nano.Package, "--in", input, "--out", symlink, "--max-tokens", "4", "--provider", "cpu");
        Assert.True(ok.ExitCode == 0, ok.Stderr);
        Assert.Equal(3, CountLines(real));
    }

    [Fact]
    public void Lines_with_duplicate_keys_or_lone_surrogates_become_error_records_and_the_job_goes_on()
    {
        using var dir = new TempDirectory();
        string input = dir.File("in.jsonl"), output = dir.File("out.jsonl");
        File.WriteAllLines(input,
        [
            """{"id": "x", "id": "y", "prompt": "English: Thank you.\nItalian:"}""",
            """{"id": "\ud800", "prompt": "English: Thank you.\nItalian:"}""",
            """{"id": "s", "prompt": "English: Thank you \udc00.\nItalian:"}""",
            """{"id": "ok", "prompt": "English: Thank you.\nItalian:"}""",
        ]);
        var r = Run("batch", nano.Package, "--in", input, "--out", output, "--max-tokens", "4", "--provider", "cpu");
        Assert.True(r.ExitCode == 0, r.Stderr);
        var records = File.ReadAllLines(output).Select(l => JsonNode.Parse(l)!.AsObject())
            .ToDictionary(o => o["line"] is { } n ? "line " + n : o["id"]!.ToJsonString());
        Assert.Equal(4, records.Count);
        Assert.Contains("Duplicate property 'id'", records["line 1"]["error"]!.GetValue<string>());
        Assert.Contains("\"id\" is not valid Unicode", records["line 2"]["error"]!.GetValue<string>());
        Assert.Contains("\"prompt\" is not valid Unicode", records["\"s\""]["error"]!.GetValue<string>());
        Assert.NotNull(records["\"ok\""]["output"]);
        // and the file resumes: a rerun has nothing left to do
        r = Run("batch", nano.Package, "--in", input, "--out", output, "--max-tokens", "4", "--provider", "cpu");
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Contains("0 this run", r.Stderr);
    }
}
