using System.CommandLine;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text.Json;
using Behemoth.Formats.Errors;
using Behemoth.Reference;

namespace Behemoth.Cli.Commands;

/// <summary><c>behemoth logits</c>: runs an engine on a token sequence and writes raw float32 logits [seq, vocab].</summary>
internal static class LogitsCommand
{
    public static Command Create()
    {
        var model = new Argument<string>("model") { Description = "Hugging Face model directory (config.json + safetensors)" };
        var tokens = new Option<string?>("--tokens") { Description = "Token ids, separated by spaces or commas, e.g. \"1 2 3\"" };
        var tokensFile = new Option<string?>("--tokens-file") { Description = "A JSON list of token ids (e.g. a golden input_ids.json), instead of --tokens" };
        var engine = new Option<string>("--engine") { Description = "Engine to run", DefaultValueFactory = _ => "reference" };
        engine.AcceptOnlyFromAmong("reference");
        var output = new Option<string>("--out") { Description = "Output file: raw little-endian float32, row-major [seq, vocab]", Required = true };
        var expect = new Option<string?>("--expect") { Description = "Expected logits in the same layout; prints max |difference| and fails above --tolerance" };
        var tolerance = new Option<double>("--tolerance") { Description = "Largest allowed |difference| with --expect", DefaultValueFactory = _ => 1e-4 };
        var command = new Command("logits", "Compute the logits of a token sequence (full-sequence forward pass)")
        {
            model, tokens, tokensFile, engine, output, expect, tolerance,
        };
        command.SetAction(parse => CliErrors.Run(parse, () =>
        {
            int[] ids = ReadTokens(parse.GetValue(tokens), parse.GetValue(tokensFile));
            double tol = parse.GetValue(tolerance);
            if (!(tol >= 0) || double.IsInfinity(tol))
                throw new BehemothException($"--tolerance must be a finite non-negative number, found {tol}");
            string? expected = parse.GetValue(expect);
            // Read the expectation before writing anything, so a bad --expect leaves no output behind.
            float[]? expectedLogits = expected is null ? null : ReadExpected(expected);
            using var reference = ReferenceModel.Load(parse.GetValue(model)!);
            var started = System.Diagnostics.Stopwatch.StartNew();
            float[] logits = reference.Forward(ids);
            var elapsed = started.Elapsed;
            int bad = logits.Count(v => !float.IsFinite(v));
            if (bad > 0)
                throw new BehemothException($"{reference.Config.ConfigPath}: the forward pass produced {bad} non-finite logits; the checkpoint holds non-finite weights or config values that overflow");
            string outPath = parse.GetValue(output)!;
            AtomicFile.Write(outPath, s => s.Write(MemoryMarshal.AsBytes(logits.AsSpan())));

            var c = reference.Config;
            Console.WriteLine($"{c.Architecture}: {ids.Length} tokens → logits [{ids.Length}, {c.VocabSize}] written to {outPath}");
            Console.WriteLine($"  reference engine, {elapsed.TotalMilliseconds:F0} ms; read {reference.BytesRead:N0} of the checkpoint's {reference.CheckpointBytes:N0} bytes");
            if (expectedLogits is null) return 0;
            if (expectedLogits.Length != logits.Length)
                throw new BehemothException($"--expect {expected}: holds {expectedLogits.Length} floats, this run produced {logits.Length} ([{ids.Length}, {c.VocabSize}])");
            double diff = 0;
            for (int i = 0; i < logits.Length; i++) diff = Math.Max(diff, Math.Abs(logits[i] - expectedLogits[i]));
            Console.WriteLine($"  max |logit - expected| = {diff:E3} (tolerance {tol:E1}): {(diff <= tol ? "match" : "MISMATCH")}");
            return diff <= tol ? 0 : 2;
        }));
        return command;
    }

    internal static int[] ReadTokens(string? text, string? file)
    {
        if ((text is null) == (file is null))
            throw new BehemothException("give the token ids with exactly one of --tokens \"1 2 3\" or --tokens-file input_ids.json");
        if (file is not null)
        {
            try
            {
                var ids = JsonSerializer.Deserialize<int[]>(File.ReadAllText(file))
                    ?? throw new BehemothException($"{file}: expected a JSON list of token ids, found null");
                return ids.Length > 0 ? ids : throw new BehemothException($"{file}: no token ids given");
            }
            catch (JsonException e)
            {
                throw new BehemothException($"{file}: expected a JSON list of integer token ids ({e.Message})");
            }
        }
        var parts = text!.Split([' ', ',', '\t', '\n'], StringSplitOptions.RemoveEmptyEntries);
        if (parts.Length == 0) throw new BehemothException("--tokens: no token ids given");
        return parts.Select(p => int.TryParse(p, NumberStyles.None, CultureInfo.InvariantCulture, out int id)
            ? id : throw new BehemothException($"--tokens: '{p}' is not a non-negative integer token id")).ToArray();
    }

    private static float[] ReadExpected(string path)
    {
        byte[] bytes;
        try
        {
            bytes = File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new BehemothException($"--expect {path}: cannot read ({e.Message})");
        }
        if (bytes.Length == 0 || bytes.Length % sizeof(float) != 0)
            throw new BehemothException($"--expect {path}: holds {bytes.Length} bytes, not a non-empty float32 [seq, vocab] file");
        return MemoryMarshal.Cast<byte, float>(bytes).ToArray();
    }
}
