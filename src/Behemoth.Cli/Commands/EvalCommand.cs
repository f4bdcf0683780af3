using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Nodes;
using Behemoth.Exporter.Pruning;
using Behemoth.Formats.Errors;
using Behemoth.Reference;
using Behemoth.Runtime;
using Behemoth.Runtime.Generation;
using Behemoth.Text;
using Behemoth.Package;

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
        var trust = TrustOption.Create();
        var command = new Command("eval", "Perplexity of held-out text under a model or package") { model, text, engine, profile, window, json, provider, trust };
        command.SetAction(parse => CliErrors.Run(parse, () =>
        {
            string dir = parse.GetValue(model)!;
            int w = parse.GetValue(window);
            if (w < 2) throw new BehemothException($"--window must be at least 2, found {w}");
            // one scoring function for both engines; the package's (or the checkpoint's) own BOS and EOS frame each document
            Func<int[], double> score;
            IDisposable owner;
            Behemoth.Runtime.Tokenizer tokenizer;
            if (parse.GetValue(engine) == "onnx")
            {
                var loaded = Model.Open(dir, new ModelOptions { Profile = parse.GetValue(profile)!, Provider = ProviderOption.Parse(parse.GetValue(provider)), TrustedKeys = TrustOption.Keys(parse, trust) });
                (owner, tokenizer) = (loaded, loaded.Tokenizer);
                if (w > loaded.Session.Shape.ContextLength)
                {
                    loaded.Dispose();
                    throw new BehemothException($"--window {w} is longer than the context of {dir} ({loaded.Session.Shape.ContextLength} tokens)");
                }
                score = window => Perplexity.NegativeLogLikelihood(loaded.Session, window);
            }
            else
            {
                var reference = ReferenceModel.Load(dir);
                owner = reference;
                if (w > reference.Config.MaxPositionEmbeddings)
                {
                    reference.Dispose();
                    throw new BehemothException($"--window {w} is longer than the model's max_position_embeddings ({reference.Config.MaxPositionEmbeddings})");
                }
                tokenizer = Behemoth.Runtime.Tokenizer.Load(dir, reference.Config.BosTokenId, reference.Config.EosTokenIds);
                score = window => Perplexity.NegativeLogLikelihood(reference.Forward(window[..^1]), reference.Config.VocabSize, window);
            }
            using (owner)
            {
                var rows = new List<(string File, long Tokens, double Nll)>();
                foreach (var file in parse.GetValue(text)!)
                {
                    double nll = 0;
                    long count = 0;
                    foreach (var doc in TextDocuments.Read(file))
                        foreach (var span in Perplexity.Windows(Perplexity.DocumentIds(tokenizer, doc), w))
                        {
                            nll += score(span);
                            count += span.Length - 1;
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
