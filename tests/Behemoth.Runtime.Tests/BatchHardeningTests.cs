using System.Diagnostics;
using System.Text;
using System.Text.Json.Nodes;
using Behemoth.Runtime.Batch;
using Behemoth.Runtime.Generation;
using Behemoth.Tests;

namespace Behemoth.Runtime.Tests;

/// <summary>
/// The attacks of issue 19 on batch jobs, reproduced: a second job through a symbolic or hard link, input lines the
/// JSON reader turns into something odd, and results files too big to read whole.
/// </summary>
public sealed class BatchHardeningTests
{
    private static readonly GenerationOptions Defaults = new() { MaxNewTokens = 8 };

    private static BatchLine One(string text) => Assert.Single(BatchInput.Parse([text], Defaults));

    [Fact]
    public void A_second_job_through_a_symbolic_link_to_the_results_file_is_refused()
    {
        using var dir = new TempDirectory();
        string real = dir.File("out.jsonl"), link = dir.File("link.jsonl");
        using (var first = BatchResultFile.Open(real))
        {
            File.CreateSymbolicLink(link, real);
            Assert.Contains("another job", Assert.Throws<BatchJobException>(() => BatchResultFile.Open(link)).Message);
            // a link to the folder and "./" are other spellings of the same file
            Directory.CreateSymbolicLink(dir.File("dirlink"), dir.Path);
            Assert.Contains("another job", Assert.Throws<BatchJobException>(() => BatchResultFile.Open(Path.Combine(dir.Path, "dirlink", "out.jsonl"))).Message);
            Assert.Contains("another job", Assert.Throws<BatchJobException>(() => BatchResultFile.Open(Path.Combine(dir.Path, ".", "out.jsonl"))).Message);
        }
        using var again = BatchResultFile.Open(link);      // released when the first job closes it
    }

    [Fact]
    public void A_second_job_through_a_hard_link_to_the_results_file_is_refused_and_readers_are_not()
    {
        if (OperatingSystem.IsWindows()) return;           // (no `ln` there; the share mode covers hard links)
        using var dir = new TempDirectory();
        string real = dir.File("out.jsonl"), hard = dir.File("hard.jsonl");
        var lines = BatchInput.Parse(["""{"id": "a", "prompt": "x"}"""], Defaults);
        using var first = BatchResultFile.Open(real);
        first.AppendResult(lines[0], "ok", 1, 1);
        using (var ln = Process.Start("ln", [real, hard])) ln.WaitForExit();
        Assert.True(File.Exists(hard), "ln did not make the hard link");
        var refused = Assert.Throws<BatchJobException>(() => BatchResultFile.Open(hard));
        Assert.Contains("another job", refused.Message);
        Assert.Contains(hard, refused.Message);
        // watching the file while the job runs still works (the lock is not a flock readers would trip on)
        using (var reader = new FileStream(hard, FileMode.Open, FileAccess.Read, FileShare.ReadWrite))
            Assert.Equal((byte)'{', (byte)reader.ReadByte());
        Assert.Single(File.ReadAllLines(real));
    }

    [Fact]
    public async Task A_results_path_that_is_a_directory_or_a_pipe_is_refused_naming_it()
    {
        using var dir = new TempDirectory();
        Assert.Contains($"{dir.Path}: is a directory", Assert.Throws<BatchJobException>(() => BatchResultFile.Open(dir.Path)).Message);
        if (OperatingSystem.IsWindows()) return;
        string fifo = dir.File("fifo");
        using (var mkfifo = Process.Start("mkfifo", [fifo])) mkfifo.WaitForExit();
        var open = Task.Run(() => BatchResultFile.Open(fifo));
        Assert.Same(open, await Task.WhenAny(open, Task.Delay(TimeSpan.FromSeconds(30))));     // it must not block
        var e = await Assert.ThrowsAsync<BatchJobException>(() => open);
        Assert.Contains($"{fifo}: not a regular file", e.Message);
    }

    [Theory]
    [InlineData("""{"id": "x", "id": "y", "prompt": "p"}""", "line:1", "Duplicate property 'id'")]
    [InlineData("""{"id": "x", "prompt": "p", "prompt": "q"}""", "line:1", "Duplicate property 'prompt'")]
    [InlineData("""{"id": "x", "prompt": "p", "max_tokens": 1, "max_tokens": 900}""", "line:1", "Duplicate property 'max_tokens'")]
    [InlineData("""{"id": "\ud800", "prompt": "p"}""", "line:1", "\"id\" is not valid Unicode")]
    [InlineData("""{"id": "\udc00x", "prompt": "p"}""", "line:1", "\"id\" is not valid Unicode")]
    [InlineData("""{"id": "a", "prompt": "hello \ud800"}""", "s:a", "\"prompt\" is not valid Unicode")]
    [InlineData("""{"id": "a", "prompt": "p", "stop": ["\ud800"]}""", "s:a", "\"stop\" is not valid Unicode")]
    [InlineData("""{"id": "a", "prompt": "p", "stop": "\udfff"}""", "s:a", "\"stop\" is not valid Unicode")]
    [InlineData("""{"id": "a", "prompt": "p", "stop": ["\n", ""]}""", "s:a", "\"stop\" must not hold an empty string")]
    [InlineData("""{"id": {"nested": 1}, "prompt": "p"}""", "line:1", "string or a number")]
    [InlineData("""{"id": "a", "prompt": ["p"]}""", "s:a", "\"prompt\" must be a string")]
    [InlineData("""{"id": "a", "prompt": "p", "max_tokens": 1e400}""", "s:a", "\"max_tokens\" must be a whole number")]
    [InlineData("""{"id": "a", "prompt": "p", "seed": 99999999999}""", "s:a", "\"seed\" must be a whole number")]
    [InlineData("""{"id": "a", "prompt": "p", "temperature": "hot"}""", "s:a", "\"temperature\" must be a number")]
    [InlineData("""{"id": "a", "prompt": "p"} trailing""", "line:1", "malformed JSON")]
    [InlineData("""{"id": "a", "prompt": "p",}""", "line:1", "malformed JSON")]
    public void An_odd_line_becomes_an_error_record_keyed_by_its_id_or_line(string text, string key, string error)
    {
        var line = One(text);
        Assert.Equal(key, line.Key);
        Assert.Contains(error, line.Error);
        Assert.Null(line.Prompt);
    }

    [Fact]
    public void An_input_line_over_the_cap_is_an_error_record_and_the_lines_after_it_run()
    {
        using var dir = new TempDirectory();
        string path = dir.File("in.jsonl");
        using (var writer = new StreamWriter(path))
        {
            writer.Write("""{"id": "a", "prompt": "x"}""" + "\n");
            writer.Write("{\"id\": \"huge\", \"prompt\": \"");
            writer.Write(new string('w', BatchInput.MaxLineChars));
            writer.Write("\"}\r\n");
            writer.Write("""{"id": "b", "prompt": "y"}""" + "\n");
        }
        var lines = BatchInput.Read(path, Defaults);
        Assert.Equal(["s:a", "line:2", "s:b"], lines.Select(l => l.Key));
        Assert.Contains("over 16 Mi characters", lines[1].Error);
        Assert.Equal("y", lines[2].Prompt);
        Assert.Equal(["one", null, "three", null], BatchInput.ReadLines(new StringReader("one\ntwo-too-long\nthree\r\nfour-too-long"), maxChars: 5));
    }

    [Fact]
    public void Deep_nesting_is_an_error_record_not_a_crash()
    {
        string deep = """{"id": "a", "prompt": "p", "x": """ + new string('[', 5000) + new string(']', 5000) + "}";
        Assert.Contains("malformed JSON", One(deep).Error);
    }

    [Fact]
    public void Odd_lines_get_error_records_that_are_valid_json_and_the_other_lines_keep_running()
    {
        using var dir = new TempDirectory();
        string path = dir.File("out.jsonl");
        var lines = BatchInput.Parse([
            """{"id": "x", "id": "y", "prompt": "p"}""",
            """{"id": "\ud800", "prompt": "p"}""",
            """{"id": "ok", "prompt": "p"}""",
            """{"id": "a", "prompt": "hello \ud800"}""",
        ], Defaults);
        Assert.Equal(["line:1", "line:2", "s:ok", "s:a"], lines.Select(l => l.Key));
        using (var file = BatchResultFile.Open(path))
        {
            foreach (var line in lines)
                if (line.Error is { } error) file.AppendError(line, error);
                else file.AppendResult(line, "out \ud800 put", 1, 1);       // even generated text with a lone surrogate is written
        }
        var records = File.ReadAllLines(path).Select(l => JsonNode.Parse(l)!.AsObject()).ToArray();
        Assert.Equal(4, records.Length);
        Assert.Equal(1, records[0]["line"]!.GetValue<int>());
        Assert.Equal("out \uFFFD put", records[2]["output"]!.GetValue<string>());
        using var reopened = BatchResultFile.Open(path);
        Assert.Equal(4, reopened.FinishedKeys.Count);
    }

    [Theory]
    [InlineData("""{"id": "a", "id": "b", "output": "x"}""")]
    [InlineData("""{"id": "a", "output": "x", "output": "y"}""")]
    [InlineData("""{"id": "\ud800", "output": "x"}""")]
    [InlineData("""{"id": "a"}""")]
    [InlineData("""[{"id": "a", "output": "x"}]""")]
    [InlineData("""{"id": "a", "output": "x"} {"id": "b", "output": "y"}""")]
    public void An_odd_results_line_is_not_a_record(string text) => Assert.Null(BatchRecord.TryParse(text));

    [Theory]
    [InlineData("""{"id":"a","output":"x","tokens":1,"ms":2}""", "s:a")]
    [InlineData("""{"id":7.0,"error":"e"}""", "n:7.0")]
    [InlineData("""{"id":null,"line":3,"error":"e"}""", "line:3")]
    [InlineData("""{"id":"b","line":3.5,"error":"e"}""", "s:b")]
    [InlineData("""{"\u0069d":"c","extra":{"id":"not this"},"output":""}""", "s:c")]
    public void A_results_line_keys_as_before(string text, string key) => Assert.Equal(key, BatchRecord.TryParse(text)!.Key);

    /// <summary>Records of about <paramref name="outputChars"/> characters each.</summary>
    private static long WriteRecords(string path, int count, int outputChars, string tail = "")
    {
        string output = new('x', outputChars);
        using (var stream = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 16))
        using (var writer = new StreamWriter(stream, new UTF8Encoding(false)))
        {
            for (int i = 0; i < count; i++)
                writer.Write($"{{\"id\":{i},\"output\":\"{output}\",\"tokens\":1,\"ms\":1}}\n");
            writer.Write(tail);
        }
        return new FileInfo(path).Length;
    }

    [Fact]
    public void A_big_results_file_resumes_streaming_without_holding_its_bytes()
    {
        using var dir = new TempDirectory();
        string path = dir.File("big.jsonl");
        const int Count = 6000;
        long bytes = WriteRecords(path, Count, 8000, tail: """{"id":6000,"output":"torn""");     // ~48 MB and a torn last line
        var lines = BatchInput.Parse(Enumerable.Range(0, Count + 1).Select(i => $$"""{"id": {{i}}, "prompt": "p"}"""), Defaults);

        long before = GC.GetAllocatedBytesForCurrentThread();
        using (var file = BatchResultFile.Open(path))
        {
            long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
            Assert.Equal(Count, file.FinishedKeys.Count);
            Assert.Equal(Encoding.UTF8.GetByteCount("""{"id":6000,"output":"torn"""), file.DroppedBytes);
            // reading the whole file would allocate its bytes at least twice (bytes, then text); streaming allocates the keys
            Assert.True(allocated < bytes / 20, $"opening a {bytes:N0}-byte results file allocated {allocated:N0} bytes");
            file.AppendResult(lines[Count], "done", 1, 1);
        }
        Assert.Equal(Count + 1, File.ReadLines(path).Count());

        // merging streams too: it keeps offsets, not records
        before = GC.GetAllocatedBytesForCurrentThread();
        Assert.Equal(Count + 1, BatchMerge.Merge([path], dir.File("merged.jsonl"), lines));
        long merged = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.True(merged < bytes / 10, $"merging a {bytes:N0}-byte results file allocated {merged:N0} bytes");
        Assert.Equal(File.ReadAllBytes(path), File.ReadAllBytes(dir.File("merged.jsonl")));
    }

    [Fact]
    public void A_results_line_over_the_limit_is_refused_naming_the_file_and_line()
    {
        using var dir = new TempDirectory();
        string path = dir.File("long.jsonl");
        WriteRecords(path, 2, 10);
        using (var stream = new FileStream(path, FileMode.Append))
        {
            var chunk = Encoding.ASCII.GetBytes(new string('y', 1 << 20));
            for (int i = 0; i <= ResultLines.MaxLineBytes >> 20; i++) stream.Write(chunk);
            stream.WriteByte((byte)'\n');
        }
        var e = Assert.Throws<BatchJobException>(() => BatchResultFile.Open(path));
        Assert.Contains($"{path}:3: the line is over 64 MiB", e.Message);
    }

    [Fact]
    public void The_line_reader_goes_past_2_GiB_with_64_bit_offsets_in_bounded_memory()
    {
        // a results stream of 2.06 GiB made on the fly (no disk): 33,000 records of 64 KiB
        const int Records = 33_000;
        var stream = new RepeatedRecords(Records, 64 * 1024);
        Assert.True(stream.Length > int.MaxValue);
        long before = GC.GetAllocatedBytesForCurrentThread();
        var lines = new ResultLines(stream, "synthetic.jsonl", 0, stream.Length);
        int count = 0;
        long lastOffset = 0;
        while (lines.Next(out var line, out bool complete))
        {
            Assert.True(complete);
            Assert.Equal("s:" + count.ToString("D9", System.Globalization.CultureInfo.InvariantCulture), ResultLines.Key(line));
            lastOffset = lines.Offset;
            count++;
        }
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.Equal(Records, count);
        Assert.Equal(Records, lines.Number);
        Assert.Equal(stream.Length - stream.RecordBytes, lastOffset);
        Assert.True(lastOffset > int.MaxValue);
        Assert.True(allocated < 16 << 20, $"reading {stream.Length:N0} bytes allocated {allocated:N0}");
        Assert.Equal(stream.Length, ResultLines.EndOfLastLine(stream, stream.Length));
    }

    /// <summary>{"id":"000000000","output":"xxx…"} records, numbered, generated as they are read.</summary>
    private sealed class RepeatedRecords : Stream
    {
        private readonly byte[] _record;
        private readonly int _count;
        private long _position;

        public RepeatedRecords(int count, int recordBytes)
        {
            _count = count;
            string head = "{\"id\":\"000000000\",\"output\":\"", tail = "\"}\n";
            _record = Encoding.ASCII.GetBytes(head + new string('x', recordBytes - head.Length - tail.Length) + tail);
        }

        public int RecordBytes => _record.Length;
        public override long Length => (long)_count * _record.Length;
        public override long Position { get => _position; set => _position = value; }
        public override bool CanRead => true;
        public override bool CanSeek => true;
        public override bool CanWrite => false;

        public override int Read(byte[] buffer, int offset, int count)
        {
            int done = 0;
            while (done < count && _position < Length)
            {
                long index = _position / _record.Length;
                int at = (int)(_position % _record.Length);
                int n = Math.Min(count - done, _record.Length - at);
                _record.AsSpan(at, n).CopyTo(buffer.AsSpan(offset + done));
                // the record's number, written over the zeros of its id
                for (int d = 0; d < 9; d++)
                {
                    int pos = 7 + d - at;
                    if (pos >= 0 && pos < n) buffer[offset + done + pos] = (byte)('0' + (int)(index / (long)Math.Pow(10, 8 - d) % 10));
                }
                done += n;
                _position += n;
            }
            return done;
        }

        public override long Seek(long offset, SeekOrigin origin) => _position = origin switch
        {
            SeekOrigin.Begin => offset,
            SeekOrigin.Current => _position + offset,
            _ => Length + offset,
        };

        public override void Flush() { }
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
