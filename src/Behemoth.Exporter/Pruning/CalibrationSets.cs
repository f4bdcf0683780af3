using Behemoth.Formats.Config;
using Behemoth.Formats.Errors;
using Behemoth.Text;
using Behemoth.Package;

namespace Behemoth.Exporter.Pruning;

/// <summary>Calibration text → token sequences for the profiler: each document as BOS + text + EOS, cut into windows.</summary>
public static class CalibrationSets
{
    public const int Window = 256;

    /// <summary>
    /// The documents of <paramref name="files"/>, each tokenized with the model's <paramref name="tokenizer"/> (no BOS or
    /// EOS added by it) between <paramref name="bos"/> and <paramref name="eos"/> (see <see cref="DocumentBounds"/>).
    /// </summary>
    public static CalibrationDomain Load(string name, IReadOnlyList<string> files, LoadedTokenizer tokenizer, int bos, int eos, int maxTokens)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        var sequences = new List<int[]>();
        long tokens = 0;
        foreach (var file in files)
            foreach (var doc in TextDocuments.Read(file))
            {
                var ids = new List<int> { bos };
                ids.AddRange(tokenizer.Tokenizer.EncodeToIds(doc));
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

    /// <summary>
    /// The ids a calibration document starts and ends with: config.json's <c>bos_token_id</c> and first
    /// <c>eos_token_id</c>, else the BOS / EOS tokens the tokenizer names (tokenizer_config.json or the tokenizer file).
    /// A model that names neither fails here, naming both, rather than calibrating on a guessed id.
    /// </summary>
    public static (int Bos, int Eos) DocumentBounds(DecoderConfig config, LoadedTokenizer tokenizer, string modelDirectory)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(tokenizer);
        string configFile = Path.Combine(modelDirectory, "config.json");
        int bos = config.BosTokenId ?? tokenizer.BosTokenId
            ?? throw new BehemothException($"{configFile}: no bos_token_id, and the tokenizer ({tokenizer.File}) names no BOS token; "
                + "calibration documents start with the model's beginning-of-sequence id");
        int eos = config.EosTokenIds is [int first, ..] ? first : tokenizer.EosTokenId
            ?? throw new BehemothException($"{configFile}: no eos_token_id, and the tokenizer ({tokenizer.File}) names no EOS token; "
                + "calibration documents end with the model's end-of-sequence id");
        return (bos, eos);
    }

    /// <summary>Finds a stats file's recorded source: relative to the stats file (as profile records it), else as given.</summary>
    public static string Resolve(string source, string statsPath)
    {
        string beside = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(statsPath))!, source);
        if (File.Exists(beside)) return beside;
        if (File.Exists(source)) return source;
        throw new BehemothException($"{statsPath}: calibration file '{source}' is gone; the reconstruction criterion and kd re-read it");
    }
}
