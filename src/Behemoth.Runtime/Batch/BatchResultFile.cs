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
    /// <summary>The record of one results line; null when the text is not a record (not an object, no usable id or line).</summary>
    public static BatchRecord? TryParse(string text)
    {
        JsonObject obj;
        try
        {
            if (JsonNode.Parse(text) is not JsonObject o) return null;
            obj = o;
        }
        catch (JsonException)
        {
            return null;
        }
        if (!obj.ContainsKey("output") && !obj.ContainsKey("error")) return null;
        if (obj["line"] is JsonValue line && line.TryGetValue(out int number) && number > 0) return new BatchRecord(BatchLine.LineKey(number), text);
        return BatchLine.IdKey(obj["id"]) is var (key, _) ? new BatchRecord(key, text) : null;
    }

    /// <summary>
    /// Every record of a complete results file, in file order. A file that ends without a newline (a torn last line) or
    /// holds a line that is not a record is refused, naming the file and line.
    /// </summary>
    public static IReadOnlyList<BatchRecord> ReadAll(string path)
    {
        string content = File.ReadAllText(path, new UTF8Encoding(false, true));
        if (content.Length > 0 && content[^1] != '\n')
            throw new BatchJobException($"{path}: the last line is incomplete (the job writing it did not finish); rerun that job to complete it");
        var records = new List<BatchRecord>();
        int number = 0;
        foreach (string line in content.Split('\n'))
        {
            number++;
            if (line.Length == 0) continue;
            records.Add(TryParse(line.TrimEnd('\r')) ?? throw new BatchJobException($"{path}:{number}: not a batch result record"));
        }
        return records;
    }
}

/// <summary>
/// The results file of a job, opened for appending: one JSON line per finished input line, written with one write and
/// flushed to the disk (fsync) before the next, so a job killed at any moment leaves whole records and at most one torn
/// last line. Opening drops that torn line and reports which keys are already done, so a rerun skips them.
/// </summary>
/// <remarks>
/// Thread-safe: workers append concurrently. A job also holds <c>&lt;path&gt;.lock</c> open exclusively (an advisory
/// lock the system releases when the process dies, however it dies), so a second job on the same results file is
/// refused instead of interleaving with the first.
/// </remarks>
public sealed class BatchResultFile : IDisposable
{
    private static readonly JsonSerializerOptions s_json = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
    private readonly FileStream _stream;
    private readonly FileStream _lock;
    private readonly Lock _gate = new();
    private readonly HashSet<string> _finished;

    private BatchResultFile(string path, FileStream stream, FileStream lockFile, HashSet<string> finished, long droppedBytes)
    {
        _lock = lockFile;
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
    /// <exception cref="BatchJobException">A complete line of the file is not a result record, or a key is there twice.</exception>
    public static BatchResultFile Open(string path)
    {
        FileStream lockFile;
        try
        {
            lockFile = new FileStream(path + ".lock", FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None, 1, FileOptions.DeleteOnClose);
        }
        catch (IOException e) when (e is not FileNotFoundException and not DirectoryNotFoundException)
        {
            throw new BatchJobException($"{path}: another job is writing this results file ({path}.lock is held)", e);
        }
        FileStream? stream = null;
        try
        {
            stream = new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.Read);
            var bytes = new byte[stream.Length];
            stream.ReadExactly(bytes);
            int end = Array.LastIndexOf(bytes, (byte)'\n') + 1;       // everything after the last newline is a torn line
            long dropped = bytes.Length - end;
            if (dropped > 0)
            {
                stream.SetLength(end);
                stream.Flush(flushToDisk: true);
            }
            var finished = new HashSet<string>(StringComparer.Ordinal);
            int number = 0;
            foreach (string line in Encoding.UTF8.GetString(bytes, 0, end).Split('\n'))
            {
                number++;
                if (line.Length == 0) continue;
                var record = BatchRecord.TryParse(line.TrimEnd('\r'))
                    ?? throw new BatchJobException($"{path}:{number}: not a batch result record; give a new --out or fix the file");
                if (!finished.Add(record.Key))
                    throw new BatchJobException($"{path}:{number}: {Describe(record.Key)} is in the file twice");
            }
            stream.Seek(0, SeekOrigin.End);
            return new BatchResultFile(path, stream, lockFile, finished, dropped);
        }
        catch
        {
            stream?.Dispose();
            lockFile.Dispose();
            throw;
        }
    }

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
            _lock.Dispose();
        }
    }
}
