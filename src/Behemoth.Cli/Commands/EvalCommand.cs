using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Nodes;
using Behemoth.Exporter.Pruning;
using Behemoth.Formats.Errors;
using Behemoth.Reference;
using Behemoth.Runtime;
using Behemoth.Runtime.Generation;
using Behemoth.Runtime.Text;

namespace Behemoth.Cli.Commands;

/// <summary>
/// <c>behemoth eval</c>: per-token perplexity of held-out text (JSON lines with a "text" field, or "en"/"it"
/// translation pairs in the behemoth-nano prompt format) under a checkpoint (reference engine) or a package (onnx).
/// Each line is one document, &lt;s&gt; text &lt;/s&gt;, scored in windows of --window tokens.
/// </summary>
internal static class EvalCommand
{
    public static Command Create()
    {
        var model = new Argument<string>("model") { Description = "Hugging Face model directory (reference engine) or Behemoth package (onnx engine)" };
        var text = new Option<string[]>("--text") { Description = "JSON-lines files of held-out text", Required = true, AllowMultipleArgumentsPerToken = true };
        var engine = new Option<string>("--engine") { Description = "reference or onnx", DefaultValueFactory = _ => "onnx" };
        engine.AcceptOnlyFromAmong("reference", "onnx");
        var profile = new Option<string>("--profile") { Description = "Device profile of the package (onnx engine)", DefaultValueFactory = _ => "full" };
        var window = new Option<int>("--window") { Description = "Tokens per scoring window", DefaultValueFactory = _ => 256 };
        var provider = ProviderOption.Create();
        var json = new Option<bool>("--json") { Description = "Print JSON: per file and overall token count and perplexity" };
        var command = new Command("eval", "Perplexity of held-out text under a model or package") { model, text, engine, profile, window, json, provider };
        command.SetAction(parse => CliErrors.Run(parse, () =>
        {
            string dir = parse.GetValue(model)!;
            int w = parse.GetValue(window);
            if (w < 2) throw new BehemothException($"--window must be at least 2, found {w}");
            var tokenizer = ModelTokenizer.Load(dir);
            Func<int[], float[]> forward;
            IDisposable owner;
            int vocab, bos, eos;
            if (parse.GetValue(engine) == "onnx")
            {
                var session = DecoderSession.Open(dir, parse.GetValue(profile)!, ProviderOption.Parse(parse.GetValue(provider)));
                (owner, vocab) = (session, session.Shape.VocabSize);
                (bos, eos) = (session.Shape.BosTokenId ?? 1, session.Shape.EosTokenIds.FirstOrDefault(2));
                forward = ids =>
                {
                    using var cache = session.NewCache(ids.Length);
                    return session.Forward(ids, cache);
                };
            }
            else
            {
                var reference = ReferenceModel.Load(dir);
                (owner, vocab) = (reference, reference.Config.VocabSize);
                (bos, eos) = (reference.Config.BosTokenId ?? 1, reference.Config.EosTokenIds.FirstOrDefault(2));
                forward = ids => reference.Forward(ids);
            }
            using (owner)
            {
                var rows = new List<(string File, long Tokens, double Nll)>();
                foreach (var file in parse.GetValue(text)!)
                {
                    double nll = 0;
                    long count = 0;
                    foreach (var doc in TextDocuments.Read(file))
                    {
                        var ids = new List<int> { bos };
                        ids.AddRange(tokenizer.EncodeToIds(doc));
                        ids.Add(eos);
                        for (int start = 0; start < ids.Count - 1; start += w)
                        {
                            var span = ids.GetRange(start, Math.Min(w + 1, ids.Count - start)).ToArray();
                            float[] logits = forward(span[..^1]);
                            for (int t = 0; t < span.Length - 1; t++)
                                nll -= Logits.LogProbability(logits.AsSpan(t * vocab, vocab), span[t + 1]);
                            count += span.Length - 1;
                        }
                    }
                    rows.Add((file, count, nll));
                }
                long allTokens = rows.Sum(r => r.Tokens);
                double allPerplexity = Math.Exp(rows.Sum(r => r.Nll) / allTokens);
                if (parse.GetValue(json))
                {
                    var result = new JsonObject
                    {
                        ["model"] = dir,
                        ["tokens"] = allTokens,
                        ["perplexity"] = allPerplexity,
                        ["files"] = new JsonArray(rows.Select(r => (JsonNode)new JsonObject
                        {
                            ["file"] = r.File, ["tokens"] = r.Tokens, ["perplexity"] = Math.Exp(r.Nll / r.Tokens),
                        }).ToArray()),
                    };
                    Console.WriteLine(result.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
                }
                else
                {
                    Console.WriteLine($"{"file",-28} {"tokens",8} {"perplexity",11}");
                    foreach (var r in rows) Console.WriteLine($"{Path.GetFileName(r.File),-28} {r.Tokens,8} {Math.Exp(r.Nll / r.Tokens),11:F3}");
                    Console.WriteLine($"{"all",-28} {allTokens,8} {allPerplexity,11:F3}");
                }
            }
            return 0;
        }));
        return command;
    }
}
