using Behemoth.Formats.Errors;
using Behemoth.Package;

namespace Behemoth.Exporter.Pruning;

/// <summary>Calibration text → token sequences for the profiler: each document as BOS + text + EOS, cut into windows.</summary>
public static class CalibrationSets
{
    public const int Window = 256;

    public static CalibrationDomain Load(string name, IReadOnlyList<string> files, Func<string, IReadOnlyList<int>> encode, int bos, int eos, int maxTokens)
    {
        var sequences = new List<int[]>();
        long tokens = 0;
        foreach (var file in files)
            foreach (var doc in TextDocuments.Read(file))
            {
                var ids = new List<int> { bos };
                ids.AddRange(encode(doc));
                ids.Add(eos);
                for (int start = 0; start < ids.Count && tokens < maxTokens; start += Window)
                {
                    var window = ids.GetRange(start, (int)Math.Min(Math.Min(Window, ids.Count - start), maxTokens - tokens)).ToArray();
                    sequences.Add(window);
                    tokens += window.Length;
                }
                if (tokens >= maxTokens) return new CalibrationDomain(name, sequences, files);
            }
        if (tokens == 0) throw new BehemothException($"domain '{name}': the calibration files hold no text");
        return new CalibrationDomain(name, sequences, files);
    }

    /// <summary>Finds a stats file's recorded source: relative to the stats file (as profile records it), else as given.</summary>
    public static string Resolve(string source, string statsPath)
    {
        string beside = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(statsPath))!, source);
        if (File.Exists(beside)) return beside;
        if (File.Exists(source)) return source;
        throw new BehemothException($"{statsPath}: calibration file '{source}' is gone; the reconstruction criterion and refit re-read it");
    }
}
