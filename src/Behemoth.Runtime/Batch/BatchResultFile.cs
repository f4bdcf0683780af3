using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Behemoth.Runtime.Batch;

/// <summary>One record of a results file: its key (see <see cref="BatchLine.Key"/>) and its line as written.</summary>
/// <param name="Key">The id key, or "line:N" for a record that carries "line".</param>
/// <param name="Text">The JSON line, without its newline.</param>
public sealed record BatchRecord(string Key, string Text)
{
    /// <summary>
    /// The record of one results line; null when the text is not a record (not one JSON object, no "output" or "error",
    /// no usable id or line, or one of "id", "line", "output", "error" twice).
    /// </summary>
    public static BatchRecord? TryParse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        return ResultLines.Key(Encoding.UTF8.GetBytes(text)) is { } key ? new BatchRecord(key, text) : null;
    }

    /// <summary>
    /// Every record of a complete results file, in file order. A file that ends without a newline (a torn last line) or
    /// holds a line that is not a record is refused, naming the file and line. The file is read line by line; the
    /// records returned hold its text (to go through a file of any size without holding it, <see cref="BatchMerge"/>
    /// keeps offsets instead).
    /// </summary>
    public static IReadOnlyList<BatchRecord> ReadAll(string path)
    {
        var records = new List<BatchRecord>();
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, 1);
        ReadKeys(stream, path, (key, _, line) => records.Add(new BatchRecord(key, Encoding.UTF8.GetString(line))));
        return records;
    }

    internal delegate void RecordHandler(string key, long offset, ReadOnlySpan<byte> line);

    /// <summary>Streams the records of a complete results file: key, offset and bytes (without the newline or a '\r') of each.</summary>
    internal static void ReadKeys(FileStream stream, string path, RecordHandler handle)
    {
        var lines = new ResultLines(stream, path, 0, stream.Length);
        while (lines.Next(out var line, out bool complete))
        {
            if (!complete)
                throw new BatchJobException($"{path}: the last line is incomplete (the job writing it did not finish); rerun that job to complete it");
            if (line.IsEmpty) continue;
            string key = ResultLines.Key(line) ?? throw new BatchJobException($"{path}:{lines.Number}: not a batch result record");
            handle(key, lines.Offset, line[^1] == (byte)'\r' ? line[..^1] : line);
        }
    }
}

/// <summary>
/// The results file of a job, opened for appending: one JSON line per finished input line, written with one write and
/// flushed to the disk (fsync) before the next, so a job killed at any moment leaves whole records and at most one torn
/// last line. Opening drops that torn line and reports which keys are already done, so a rerun skips them.
/// </summary>
/// <remarks>
/// Thread-safe: workers append concurrently. A job holds an exclusive lock on the results file itself, not on its path
/// (see <c>ResultsFileLock</c>: an OFD lock on Linux, the share mode on Windows), which the system releases when the
/// process dies, however it dies; a second job on the same file, through any path, symbolic link or hard link, is
/// refused instead of interleaving with the first. Opening reads the file line by line (a 64 KiB buffer, 64-bit
/// offsets): a results file of any size resumes in memory that grows with its number of records, not its bytes.
/// </remarks>
public sealed class BatchResultFile : IDisposable
{
    private static readonly JsonSerializerOptions s_json = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
    private readonly FileStream _stream;
    private readonly Lock _gate = new();
    private readonly HashSet<string> _finished;

    private BatchResultFile(string path, FileStream stream, HashSet<string> finished, long droppedBytes)
    {
        Path = path;
        _stream = stream;
        _finished = finished;
        DroppedBytes = droppedBytes;
    }

    /// <summary>The results file's path, as given to <see cref="Open"/>.</summary>
    public string Path { get; }

    /// <summary>Bytes of a torn last line removed on opening (0 when the file ended cleanly).</summary>
    public long DroppedBytes { get; }

    /// <summary>Opens (or creates) <paramref name="path"/>, truncating a torn last line.</summary>
    /// <exception cref="BatchJobException">Another job holds the file, a complete line of the file is not a result record, or a key is there twice.</exception>
    public static BatchResultFile Open(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        FileStream stream;
        try
        {
            stream = new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, ResultsFileLock.Share);
        }
        catch (IOException e) when (IsSharingViolation(e))
        {
            throw ResultsFileLock.Held(path, e);
        }
        catch (UnauthorizedAccessException e) when (Directory.Exists(path))
        {
            throw new BatchJobException($"{path}: is a directory; a results file is a file of JSON lines", e);
        }
        try
        {
            if (!stream.CanSeek)
                throw new BatchJobException($"{path}: not a regular file (a pipe or a device); give --out a file, which a rerun can resume");
            ResultsFileLock.Acquire(stream, path);
            long length = stream.Length;
            long end = ResultLines.EndOfLastLine(stream, length);     // everything after the last newline is a torn line
            long dropped = length - end;
            if (dropped > 0)
            {
                stream.SetLength(end);
                stream.Flush(flushToDisk: true);
            }
            var finished = new HashSet<string>(StringComparer.Ordinal);
            var lines = new ResultLines(stream, path, 0, end);
            while (lines.Next(out var line, out _))
            {
                if (line.IsEmpty) continue;
                string key = ResultLines.Key(line)
                    ?? throw new BatchJobException($"{path}:{lines.Number}: not a batch result record; give a new --out or fix the file");
                if (!finished.Add(key))
                    throw new BatchJobException($"{path}:{lines.Number}: {Describe(key)} is in the file twice");
            }
            stream.Seek(0, SeekOrigin.End);
            return new BatchResultFile(path, stream, finished, dropped);
        }
        catch
        {
            stream.Dispose();
            throw;
        }
    }

    // Windows: ERROR_SHARING_VIOLATION or ERROR_LOCK_VIOLATION; elsewhere .NET's own flock refused (FileShare.None)
    private static bool IsSharingViolation(IOException e) =>
        e is not FileNotFoundException and not DirectoryNotFoundException and not PathTooLongException
        && (OperatingSystem.IsWindows() ? (e.HResult & 0xFFFF) is 32 or 33 : ResultsFileLock.Share == FileShare.None);

    /// <summary>Whether <paramref name="key"/> has a record (from an earlier run or this one).</summary>
    public bool IsFinished(string key)
    {
        lock (_gate) return _finished.Contains(key);
    }

    /// <summary>The keys with a record.</summary>
    public IReadOnlyCollection<string> FinishedKeys
    {
        get { lock (_gate) return _finished.ToArray(); }
    }

    /// <summary>Appends <c>{"id", "output", "tokens", "ms"}</c> for <paramref name="line"/>.</summary>
    public void AppendResult(BatchLine line, string output, int tokens, long milliseconds)
    {
        var obj = new JsonObject { ["id"] = line.Id?.DeepClone() };
        if (line.KeyedByLine) obj["line"] = line.LineNumber;
        obj["output"] = output;
        obj["tokens"] = tokens;
        obj["ms"] = milliseconds;
        Append(line.Key, obj);
    }

    /// <summary>Appends <c>{"id", "error"}</c> (with "line" for a line keyed by its number) for <paramref name="line"/>.</summary>
    public void AppendError(BatchLine line, string error)
    {
        var obj = new JsonObject { ["id"] = line.Id?.DeepClone() };
        if (line.KeyedByLine) obj["line"] = line.LineNumber;
        obj["error"] = error;
        Append(line.Key, obj);
    }

    private void Append(string key, JsonObject record)
    {
        // a lone surrogate cannot be written as JSON text; input lines with one are refused, so only generated text
        // could hold one, and it becomes U+FFFD rather than a failure that stops the job
        foreach (string name in (ReadOnlySpan<string>)["output", "error"])
            if (record[name] is JsonValue v && v.TryGetValue(out string? text)) record[name] = BatchInput.ReplaceLoneSurrogates(text);
        byte[] bytes = Encoding.UTF8.GetBytes(record.ToJsonString(s_json) + "\n");
        lock (_gate)
        {
            if (!_finished.Add(key)) throw new InvalidOperationException($"{Describe(key)} already has a record in {Path}");
            _stream.Write(bytes);
            _stream.Flush(flushToDisk: true);
        }
    }

    internal static string Describe(string key) => key.StartsWith("line:", StringComparison.Ordinal)
        ? "input line " + key[5..]
        : "id " + (key.StartsWith("s:", StringComparison.Ordinal) ? JsonSerializer.Serialize(key[2..]) : key[2..]);

    /// <summary>Closes the file and releases its lock, so another process may append to it.</summary>
    public void Dispose()
    {
        lock (_gate)
        {
            _stream.Dispose();
        }
    }
}
