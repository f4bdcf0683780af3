using System.CommandLine;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text.Json;
using Behemoth.Formats.Errors;
using Behemoth.Reference;
using Behemoth.Package;

namespace Behemoth.Cli.Commands;

/// <summary><c>behemoth logits</c>: runs an engine on a token sequence and writes raw float32 logits [seq, vocab].</summary>
internal static class LogitsCommand
{
    public static Command Create()
    {
        var model = new Argument<string>("model") { Description = "Hugging Face model directory (reference engine) or Behemoth package (onnx engine)" };
        var tokens = new Option<string?>("--tokens") { Description = "Token ids, separated by spaces or commas, e.g. \"1 2 3\"" };
        var tokensFile = new Option<string?>("--tokens-file") { Description = "A JSON list of token ids (e.g. a golden input_ids.json), instead of --tokens" };
        var engine = new Option<string>("--engine") { Description = "reference: the float32 C# engine on a checkpoint; onnx: ONNX Runtime on a package", DefaultValueFactory = _ => "reference" };
        engine.AcceptOnlyFromAmong("reference", "onnx");
        var profile = new Option<string>("--profile") { Description = "Device profile of the package (onnx engine)", DefaultValueFactory = _ => "full" };
        var provider = ProviderOption.Create();
        var incremental = new Option<bool>("--incremental") { Description = "onnx engine: feed one token at a time through the KV cache instead of the whole sequence at once" };
        var output = new Option<string>("--out") { Description = "Output file: raw little-endian float32, row-major [seq, vocab]", Required = true };
        var expect = new Option<string?>("--expect") { Description = "Expected logits in the same layout; prints max |difference| and fails above --tolerance" };
        var tolerance = new Option<double>("--tolerance") { Description = "Largest allowed |difference| with --expect", DefaultValueFactory = _ => 1e-4 };
        var stride = new Option<int>("--expect-column-stride")
        {
            Description = "The --expect file keeps every N-th vocabulary column ([seq, ceil(vocab/N)]), as the bundled model's parity file does",
            DefaultValueFactory = _ => 1,
        };
        var command = new Command("logits", "Compute the logits of a token sequence (full-sequence forward pass)")
        {
            model, tokens, tokensFile, engine, profile, incremental, provider, output, expect, tolerance, stride,
        };
        command.SetAction(parse => CliErrors.Run(parse, () =>
        {
            int[] ids = ReadTokens(parse.GetValue(tokens), parse.GetValue(tokensFile));
            double tol = parse.GetValue(tolerance);
            if (!(tol >= 0) || double.IsInfinity(tol))
                throw new BehemothException($"--tolerance must be a finite non-negative number, found {tol}");
            int columnStride = parse.GetValue(stride);
            if (columnStride < 1)
                throw new BehemothException($"--expect-column-stride must be at least 1, found {columnStride}");
            string? expected = parse.GetValue(expect);
            // Read the expectation before writing anything, so a bad --expect leaves no output behind.
            float[]? expectedLogits = expected is null ? null : ReadExpected(expected);
            var run = parse.GetValue(engine) == "onnx"
                ? RunOnnx(parse.GetValue(model)!, parse.GetValue(profile)!, ids, parse.GetValue(incremental), ProviderOption.Parse(parse.GetValue(provider)))
                : RunReference(parse.GetValue(model)!, ids);
            float[] logits = run.Logits;
            int bad = logits.Count(v => !float.IsFinite(v));
            if (bad > 0)
                throw new BehemothException($"{run.Source}: the forward pass produced {bad} non-finite logits; the model holds non-finite weights or config values that overflow");
            string outPath = parse.GetValue(output)!;
            AtomicFile.Write(outPath, s => s.Write(MemoryMarshal.AsBytes(logits.AsSpan())));

            Console.WriteLine($"{run.Architecture}: {ids.Length} tokens → logits [{ids.Length}, {run.VocabSize}] written to {outPath}");
            Console.WriteLine("  " + run.Summary);
            int vocab = run.VocabSize;
            if (expectedLogits is null) return 0;
            int columns = (vocab + columnStride - 1) / columnStride;
            if (expectedLogits.Length != ids.Length * columns)
                throw new BehemothException($"--expect {expected}: holds {expectedLogits.Length} floats, expected {ids.Length * columns} ([{ids.Length}, {columns}]"
                    + (columnStride > 1 ? $": every {columnStride}th of {vocab} columns)" : ")"));
            double diff = 0;
            for (int t = 0; t < ids.Length; t++)
                for (int j = 0; j < columns; j++)
                    diff = Math.Max(diff, Math.Abs(logits[t * vocab + j * columnStride] - expectedLogits[t * columns + j]));
            Console.WriteLine($"  max |logit - expected| = {diff:E3} (tolerance {tol:E1}): {(diff <= tol ? "match" : "MISMATCH")}");
            return diff <= tol ? 0 : 2;
        }));
        return command;
    }

    private sealed record EngineRun(float[] Logits, string Architecture, int VocabSize, string Source, string Summary);

    private static EngineRun RunReference(string modelDir, int[] ids)
    {
        using var reference = ReferenceModel.Load(modelDir);
        var started = System.Diagnostics.Stopwatch.StartNew();
        float[] logits = reference.Forward(ids);
        var c = reference.Config;
        return new EngineRun(logits, c.Architecture, c.VocabSize, c.ConfigPath,
            $"reference engine, {started.Elapsed.TotalMilliseconds:F0} ms; read {reference.BytesRead:N0} of the checkpoint's {reference.CheckpointBytes:N0} bytes");
    }

    private static EngineRun RunOnnx(string packageDir, string profile, int[] ids, bool incremental, Behemoth.Runtime.ExecutionProvider provider)
    {
        using var session = Behemoth.Runtime.DecoderSession.Open(packageDir, profile, provider);
        var started = System.Diagnostics.Stopwatch.StartNew();
        float[] logits;
        if (incremental)
        {
            // one token at a time through the generation loop's own KV cache handling
            int v = session.Shape.VocabSize;
            logits = new float[ids.Length * v];
            using var generator = new Behemoth.Runtime.Generation.Generator(session, new() { MaxNewTokens = ids.Length });
            for (int t = 0; t < ids.Length; t++)
            {
                generator.AppendTokens(ids.AsSpan(t, 1));
                generator.GetLastLogits().CopyTo(logits.AsSpan(t * v, v));
            }
        }
        else
        {
            using var cache = session.NewCache(ids.Length);
            logits = session.Forward(ids, cache);
        }
        return new EngineRun(logits, session.Manifest.Architecture, session.Shape.VocabSize, packageDir,
            $"onnx engine on {session.Provider.ToString().ToLowerInvariant()}, profile '{profile}' ({session.Manifest.Quantization.Weights.ToManifestName()}, MoE {session.Manifest.MoeForm.ToManifestName()}), "
            + $"{(incremental ? "token by token" : "whole sequence")}, {started.Elapsed.TotalMilliseconds:F0} ms");
    }

    internal static int[] ReadTokens(string? text, string? file)
    {
        if ((text is null) == (file is null))
            throw new BehemothException("give the token ids with exactly one of --tokens \"1 2 3\" or --tokens-file input_ids.json");
        if (file is not null)
        {
            try
            {
                var ids = JsonSerializer.Deserialize<int[]>(PackageFile.ReadInput(file))
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
            bytes = PackageFile.ReadInput(path);
        }
        catch (PackageFormatException e)
        {
            throw new BehemothException($"--expect {path}: cannot read ({e.Message[(path.Length + 2)..]})");
        }
        if (bytes.Length == 0 || bytes.Length % sizeof(float) != 0)
            throw new BehemothException($"--expect {path}: holds {bytes.Length} bytes, not a non-empty float32 [seq, vocab] file");
        return MemoryMarshal.Cast<byte, float>(bytes).ToArray();
    }
}
