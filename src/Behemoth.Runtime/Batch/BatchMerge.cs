using System.Globalization;
using System.Text;

namespace Behemoth.Runtime.Batch;

/// <summary>
/// Joins the results files of the shards of one job into one file, checking that every record appears once.
/// With the input file, it also checks that every input line has a record (and nothing else does) and writes the
/// records in input order; without it, records are sorted: number ids by value, then string ids by ordinal
/// (UTF-16) order, then the records keyed by line number ("line") by that number. The files are read line by line and
/// the records copied from them by offset, so memory grows with the number of records, not the size of the files.
/// </summary>
public static class BatchMerge
{
    /// <summary>Merges <paramref name="shardFiles"/> into <paramref name="outputPath"/> (through a temporary file renamed into place).</summary>
    /// <param name="shardFiles">The results files of the shards (each written by <see cref="BatchJob"/>); every one must be complete.</param>
    /// <param name="outputPath">The merged results file to write; replaced if it exists.</param>
    /// <param name="inputLines">The job's input (from <see cref="BatchInput.Read"/>), or null to sort instead.</param>
    /// <returns>The number of records written.</returns>
    /// <exception cref="BatchJobException">A shard file is incomplete, a record is in two places, or (with the input) a line has no record or a record no line.</exception>
    public static int Merge(IReadOnlyList<string> shardFiles, string outputPath, IReadOnlyList<BatchLine>? inputLines = null)
    {
        ArgumentNullException.ThrowIfNull(shardFiles);
        ArgumentException.ThrowIfNullOrEmpty(outputPath);
        if (shardFiles.Count == 0) throw new BatchJobException("no results files to merge");

        // one pass over each file keeps where each record is (file, offset, length), not its text, so shards of any size merge
        var records = new Dictionary<string, (int File, long Offset, int Length)>(StringComparer.Ordinal);
        var streams = new List<FileStream>();
        string full = Path.GetFullPath(outputPath);
        string temp = Path.Combine(Path.GetDirectoryName(full)!, $".{Path.GetFileName(full)}.{Environment.ProcessId}.tmp");
        int count = 0;
        try
        {
            for (int i = 0; i < shardFiles.Count; i++)
            {
                string file = shardFiles[i];
                var stream = Behemoth.Package.PackageFile.OpenRegular(file);      // read twice by offset: a regular file, never a blocking open
                streams.Add(stream);
                int index = i;
                BatchRecord.ReadKeys(stream, file, (key, offset, line) =>
                {
                    if (!records.TryAdd(key, (index, offset, line.Length)))
                    {
                        string first = shardFiles[records[key].File];
                        throw new BatchJobException($"{BatchResultFile.Describe(key)} has a record in both {first} and {file}"
                            + (records[key].File == index ? " (twice)" : "") + ": were two jobs given the same --shard?");
                    }
                });
            }

            IEnumerable<string> ordered;
            if (inputLines is not null)
            {
                var missing = inputLines.Where(l => !records.ContainsKey(l.Key)).ToArray();
                if (missing.Length > 0)
                    throw new BatchJobException($"{missing.Length} input line(s) have no record, e.g. {string.Join(", ", missing.Take(5).Select(l => BatchResultFile.Describe(l.Key)))}: "
                        + "a shard is missing or unfinished (rerun its job)");
                var known = inputLines.Select(l => l.Key).ToHashSet(StringComparer.Ordinal);
                var extra = records.Keys.Where(k => !known.Contains(k)).ToArray();
                if (extra.Length > 0)
                    throw new BatchJobException($"{extra.Length} record(s) match no input line, e.g. {string.Join(", ", extra.Take(5).Select(BatchResultFile.Describe))}: were the shards run on another input?");
                ordered = inputLines.Select(l => l.Key);
            }
            else
                ordered = records.Keys.Order(KeyOrder.Instance).ToList();

            using (var output = new FileStream(temp, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 16))
            {
                var buffer = new byte[64 * 1024];
                foreach (string key in ordered)
                {
                    var (file, offset, length) = records[key];
                    if (buffer.Length < length + 1) buffer = new byte[Math.Max(length + 1, 2 * buffer.Length)];
                    var source = streams[file];
                    source.Position = offset;
                    source.ReadExactly(buffer, 0, length);
                    buffer[length] = (byte)'\n';
                    output.Write(buffer, 0, length + 1);
                    count++;
                }
                output.Flush(flushToDisk: true);
            }
            foreach (var stream in streams) stream.Dispose();      // (Windows cannot rename over an open file)
            File.Move(temp, full, overwrite: true);
        }
        catch
        {
            File.Delete(temp);
            throw;
        }
        finally
        {
            foreach (var stream in streams) stream.Dispose();
        }
        return count;
    }

    /// <summary>Number ids by value (then as written), then string ids ordinally, then line-keyed records by line.</summary>
    private sealed class KeyOrder : IComparer<string>
    {
        public static KeyOrder Instance { get; } = new();

        public int Compare(string? a, string? b)
        {
            int ra = Rank(a!), rb = Rank(b!);
            if (ra != rb) return ra.CompareTo(rb);
            return ra switch
            {
                0 => decimal.TryParse(a![2..], NumberStyles.Float, CultureInfo.InvariantCulture, out var x)
                     && decimal.TryParse(b![2..], NumberStyles.Float, CultureInfo.InvariantCulture, out var y) && x != y
                    ? x.CompareTo(y) : string.CompareOrdinal(a, b),
                2 => long.Parse(a![5..], CultureInfo.InvariantCulture).CompareTo(long.Parse(b![5..], CultureInfo.InvariantCulture)),
                _ => string.CompareOrdinal(a, b),
            };
        }

        private static int Rank(string key) => key[0] switch { 'n' => 0, 's' => 1, _ => 2 };
    }
}
