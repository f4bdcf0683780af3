using System.Text;
using System.Text.Json.Nodes;
using Behemoth.Runtime.Batch;
using Behemoth.Runtime.Generation;
using Behemoth.Tests;

namespace Behemoth.Runtime.Tests;

/// <summary>The batch job's pieces that need no model: input lines, sharding, the results file and merging.</summary>
public sealed class BatchTests
{
    private static readonly GenerationOptions Defaults = new() { MaxNewTokens = 8 };

    private static IReadOnlyList<BatchLine> Parse(params string[] lines) => BatchInput.Parse(lines, Defaults);

    [Fact]
    public void String_and_number_ids_are_distinct_keys_and_per_line_options_override_the_defaults()
    {
        var lines = Parse(
            """{"id": "1", "prompt": "a"}""",
            """{"id": 1, "prompt": "b", "max_tokens": 3, "temperature": 0.5, "top_k": 4, "top_p": 0.9, "seed": 11, "stop": "\n"}""");
        Assert.Equal(["s:1", "n:1"], lines.Select(l => l.Key));
        Assert.Equal(Defaults, lines[0].Options);
        var o = lines[1].Options!;
        Assert.Equal((3, 0.5f, 4, 0.9f, 11), (o.MaxNewTokens, o.Temperature, o.TopK, o.TopP, o.Seed!.Value));
        Assert.Equal(["\n"], o.StopStrings);
        Assert.All(lines, l => Assert.Null(l.Error));
    }

    [Theory]
    [InlineData("not json", "line:1", "malformed JSON")]
    [InlineData("[1, 2]", "line:1", "not a JSON object")]
    [InlineData("""{"prompt": "x"}""", "line:1", "no \"id\"")]
    [InlineData("""{"id": true, "prompt": "x"}""", "line:1", "string or a number")]
    [InlineData("""{"id": "a"}""", "s:a", "no \"prompt\"")]
    [InlineData("""{"id": "a", "prompt": 5}""", "s:a", "\"prompt\" must be a string")]
    [InlineData("""{"id": "a", "prompt": "x", "temperature": -1}""", "s:a", "\"temperature\" must be a finite number")]
    [InlineData("""{"id": "a", "prompt": "x", "top_p": 0}""", "s:a", "\"top_p\" must be in (0, 1]")]
    [InlineData("""{"id": "a", "prompt": "x", "max_tokens": 2.5}""", "s:a", "\"max_tokens\" must be a whole number")]
    [InlineData("""{"id": "a", "prompt": "x", "seed": "7"}""", "s:a", "\"seed\" must be a whole number")]
    [InlineData("""{"id": "a", "prompt": "x", "stop": [1]}""", "s:a", "\"stop\" must be a string or an array")]
    public void A_bad_line_gets_an_error_keyed_by_its_id_or_else_its_line(string text, string key, string error)
    {
        var line = Assert.Single(Parse(text));
        Assert.Equal(key, line.Key);
        Assert.Contains(error, line.Error);
        Assert.Null(line.Options);
    }

    [Fact]
    public void The_first_line_of_a_repeated_id_wins_and_later_ones_are_errors_keyed_by_line_and_blank_lines_are_skipped()
    {
        var lines = Parse("""{"id": 7, "prompt": "a"}""", "", """{"id": 7, "prompt": "b"}""", """{"id": 7.0, "prompt": "c"}""");
        Assert.Equal(["n:7", "line:3", "n:7.0"], lines.Select(l => l.Key));
        Assert.Equal("a", lines[0].Prompt);
        Assert.Contains("duplicate id: line 1", lines[1].Error);
        Assert.Equal(7, lines[1].Id!.GetValue<int>());
    }

    [Fact]
    public void Fnv1a_matches_the_published_test_vectors()
    {
        Assert.Equal(0xcbf29ce484222325UL, BatchShard.Fnv1a64(""));
        Assert.Equal(0xaf63dc4c8601ec8cUL, BatchShard.Fnv1a64("a"));
        Assert.Equal(0x85944171f73967e8UL, BatchShard.Fnv1a64("foobar"));
    }

    [Fact]
    public void Shards_split_the_lines_into_disjoint_parts_that_cover_them_and_a_line_keeps_its_shard_whatever_else_is_in_the_file()
    {
        var lines = BatchInput.Parse(Enumerable.Range(0, 200).Select(i => i % 2 == 0 ? $$"""{"id": {{i}}, "prompt": "p"}""" : $$"""{"id": "q{{i}}", "prompt": "p"}"""), Defaults);
        var shards = Enumerable.Range(0, 4).Select(i => new BatchShard(i, 4)).ToArray();
        foreach (var line in lines) Assert.Single(shards, s => s.Contains(line));
        Assert.All(shards, s => Assert.InRange(lines.Count(s.Contains), 30, 70));
        var alone = BatchInput.Parse(["""{"id": "q7", "prompt": "other"}"""], Defaults)[0];
        Assert.Equal(shards.Single(s => s.Contains(lines[7])), shards.Single(s => s.Contains(alone)));
    }

    [Theory]
    [InlineData("4/4")]
    [InlineData("-1/4")]
    [InlineData("1")]
    [InlineData("a/b")]
    [InlineData("0/0")]
    public void A_shard_outside_0_to_N_is_refused(string text) =>
        Assert.Contains("i/N", Assert.Throws<BatchJobException>(() => BatchShard.Parse(text)).Message);

    [Fact]
    public void Reopening_a_results_file_drops_a_torn_last_line_and_knows_the_finished_keys()
    {
        using var dir = new TempDirectory();
        string path = dir.File("out.jsonl");
        var lines = Parse("""{"id": "a", "prompt": "x"}""", """{"id": 2, "prompt": "y"}""", "oops");
        using (var file = BatchResultFile.Open(path))
        {
            file.AppendResult(lines[0], "héllo \"quoted\"\n", 3, 12);
            file.AppendError(lines[2], lines[2].Error!);
        }
        string complete = File.ReadAllText(path);
        File.AppendAllText(path, """{"id":2,"output":"half""");    // a kill in the middle of a write
        using (var file = BatchResultFile.Open(path))
        {
            Assert.Equal(Encoding.UTF8.GetByteCount("""{"id":2,"output":"half"""), file.DroppedBytes);
            Assert.Equal(["line:3", "s:a"], file.FinishedKeys.Order(StringComparer.Ordinal));
            Assert.False(file.IsFinished("n:2"));
            file.AppendResult(lines[1], "ok", 1, 1);
        }
        string[] records = File.ReadAllLines(path);
        Assert.Equal(complete, string.Join("", records.Take(2).Select(r => r + "\n")));
        var first = JsonNode.Parse(records[0])!;
        Assert.Equal("héllo \"quoted\"\n", first["output"]!.GetValue<string>());
        Assert.Equal(3, first["tokens"]!.GetValue<int>());
        Assert.Equal(3, JsonNode.Parse(records[1])!["line"]!.GetValue<int>());
        Assert.Equal(2, JsonNode.Parse(records[2])!["id"]!.GetValue<int>());
    }

    [Fact]
    public void A_second_job_on_the_same_results_file_is_refused_while_the_first_holds_it()
    {
        using var dir = new TempDirectory();
        using var first = BatchResultFile.Open(dir.File("out.jsonl"));
        Assert.Contains("another job", Assert.Throws<BatchJobException>(() => BatchResultFile.Open(dir.File("out.jsonl"))).Message);
    }

    [Fact]
    public void Merge_writes_input_order_with_the_input_and_sorted_ids_without_it()
    {
        using var dir = new TempDirectory();
        var lines = Parse("""{"id": "b", "prompt": "x"}""", """{"id": 10, "prompt": "x"}""", "bad", """{"id": 9, "prompt": "x"}""", """{"id": "a", "prompt": "x"}""");
        using (var one = BatchResultFile.Open(dir.File("0.jsonl")))
        {
            one.AppendResult(lines[3], "nine", 1, 1);
            one.AppendResult(lines[0], "b", 1, 1);
        }
        using (var two = BatchResultFile.Open(dir.File("1.jsonl")))
        {
            two.AppendError(lines[2], "bad");
            two.AppendResult(lines[4], "a", 1, 1);
            two.AppendResult(lines[1], "ten", 1, 1);
        }
        string[] files = [dir.File("0.jsonl"), dir.File("1.jsonl")];
        Assert.Equal(5, BatchMerge.Merge(files, dir.File("in-order.jsonl"), lines));
        Assert.Equal(["s:b", "n:10", "line:3", "n:9", "s:a"], File.ReadAllLines(dir.File("in-order.jsonl")).Select(l => BatchRecord.TryParse(l)!.Key));
        BatchMerge.Merge(files, dir.File("sorted.jsonl"));
        Assert.Equal(["n:9", "n:10", "s:a", "s:b", "line:3"], File.ReadAllLines(dir.File("sorted.jsonl")).Select(l => BatchRecord.TryParse(l)!.Key));
    }

    [Fact]
    public void Merge_refuses_an_id_in_two_shards_a_missing_line_and_an_unfinished_shard()
    {
        using var dir = new TempDirectory();
        var lines = Parse("""{"id": "a", "prompt": "x"}""", """{"id": "b", "prompt": "x"}""");
        foreach (string name in new[] { "0.jsonl", "1.jsonl" })
        {
            using var file = BatchResultFile.Open(dir.File(name));
            file.AppendResult(lines[0], "a", 1, 1);
        }
        var twice = Assert.Throws<BatchJobException>(() => BatchMerge.Merge([dir.File("0.jsonl"), dir.File("1.jsonl")], dir.File("m.jsonl")));
        Assert.Contains("id \"a\" has a record in both", twice.Message);
        var missing = Assert.Throws<BatchJobException>(() => BatchMerge.Merge([dir.File("0.jsonl")], dir.File("m.jsonl"), lines));
        Assert.Contains("1 input line(s) have no record, e.g. id \"b\"", missing.Message);
        File.AppendAllText(dir.File("0.jsonl"), """{"id":"b","out""");
        Assert.Contains("incomplete", Assert.Throws<BatchJobException>(() => BatchMerge.Merge([dir.File("0.jsonl")], dir.File("m.jsonl"))).Message);
        Assert.False(File.Exists(dir.File("m.jsonl")));
    }
}
