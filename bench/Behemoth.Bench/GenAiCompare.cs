using System.CommandLine;
using System.Diagnostics;
using System.Text.Json.Nodes;
using Behemoth.Package;
using Behemoth.Runtime;
using Behemoth.Runtime.Generation;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntimeGenAI;
using GenAiGenerator = Microsoft.ML.OnnxRuntimeGenAI.Generator;
using GenAiModel = Microsoft.ML.OnnxRuntimeGenAI.Model;

namespace Behemoth.Bench;

/// <summary>
/// <c>genai-compare PACKAGE</c>: prefill and decode speed of Behemoth's runtime against onnxruntime-genai on the same
/// exported graph, the same ONNX Runtime build (1.31), the same thread count and the same prompt, in one process,
/// alternating the two engines run by run. Both decode greedily; the figures are medians and their ratio.
/// </summary>
internal static class GenAiCompare
{
    public static Command Create()
    {
        var package = new Argument<string>("package");
        var profile = new Option<string>("--profile") { DefaultValueFactory = _ => "full" };
        var promptTokens = new Option<int>("--prompt-tokens") { DefaultValueFactory = _ => 128 };
        var decodeTokens = new Option<int>("--decode-tokens") { DefaultValueFactory = _ => 64 };
        var threads = new Option<int>("--threads") { Description = "Intra-op threads for both engines", DefaultValueFactory = _ => Environment.ProcessorCount };
        BenchThreads.Bound(threads);
        var runs = new Option<int>("--runs") { Description = "Measured runs per engine after one warm-up each", DefaultValueFactory = _ => 3 };
        var command = new Command("genai-compare", "Prefill and decode tokens/s of Behemoth's runtime vs onnxruntime-genai on one package")
        {
            package, profile, promptTokens, decodeTokens, threads, runs,
        };
        command.SetAction(parse =>
        {
            string dir = Path.GetFullPath(parse.GetValue(package)!), name = parse.GetValue(profile)!;
            int prompt = parse.GetValue(promptTokens), decode = parse.GetValue(decodeTokens), t = parse.GetValue(threads), n = parse.GetValue(runs);
            var manifest = PackageReader.ReadManifest(dir);
            var random = new Random(1234);
            int bos = manifest.Model.BosTokenId ?? throw new InvalidOperationException(
                $"{Path.Combine(dir, PackageManifest.FileName)}: model.bos_token_id is not set; the benchmark prompt starts with the model's beginning-of-sequence id");
            int[] ids = [bos, .. Enumerable.Range(1, prompt - 1).Select(_ => random.Next(4, manifest.Model.VocabSize))];

            using var options = new SessionOptions { IntraOpNumThreads = t, InterOpNumThreads = 1 };
            using var session = DecoderSession.Open(dir, name, options);
            string genaiDir = GenAiView(dir, manifest, name, t);
            using var model = new GenAiModel(genaiDir);

            var ours = new List<(double Prefill, double Decode)>();
            var theirs = new List<(double Prefill, double Decode)>();
            int[]? ourTokens = null, theirTokens = null;
            for (int r = 0; r <= n; r++)
            {
                var (a, ta) = RunBehemoth(session, ids, decode);
                var (b, tb) = RunGenAi(model, ids, decode);
                (ourTokens, theirTokens) = (ta, tb);
                if (r == 0) continue;      // warm-up
                ours.Add(a);
                theirs.Add(b);
            }
            // min_length keeps genai from stopping, which also keeps it from picking an end-of-sequence token: compare up to the first one
            var eos = manifest.Model.EosTokenIds.ToHashSet();
            int firstEos = Array.FindIndex(ourTokens!, eos.Contains);
            int compared = firstEos < 0 ? ourTokens!.Length : firstEos;
            int agree = ourTokens!.Zip(theirTokens!).Take(compared).TakeWhile(p => p.First == p.Second).Count();
            double op = Statistics.Median(ours.Select(x => x.Prefill)), od = Statistics.Median(ours.Select(x => x.Decode));
            double gp = Statistics.Median(theirs.Select(x => x.Prefill)), gd = Statistics.Median(theirs.Select(x => x.Decode));
            Console.WriteLine(new JsonObject
            {
                ["package"] = dir, ["profile"] = name, ["quantization"] = manifest.Quantization.Weights.ToManifestName(),
                ["prompt_tokens"] = prompt, ["decode_tokens"] = decode, ["threads"] = t, ["runs"] = n,
                ["behemoth_prefill_tokens_per_second"] = op, ["behemoth_decode_tokens_per_second"] = od,
                ["genai_prefill_tokens_per_second"] = gp, ["genai_decode_tokens_per_second"] = gd,
                ["prefill_ratio_behemoth_over_genai"] = op / gp, ["decode_ratio_behemoth_over_genai"] = od / gd,
                ["greedy_tokens_compared"] = compared,
                ["greedy_tokens_agreeing"] = agree,
                ["prompt_ids"] = string.Join(' ', ids),
                ["behemoth_tokens"] = string.Join(' ', ourTokens!),
                ["genai_tokens"] = string.Join(' ', theirTokens!),
            }.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }));
            Directory.Delete(genaiDir, recursive: true);
            return 0;
        });
        return command;
    }

    private static ((double, double), int[]) RunBehemoth(DecoderSession session, int[] ids, int decode)
    {
        // the same steps as genai's below, on the runtime's own generator: greedy, no stop token
        using var generator = new Behemoth.Runtime.Generation.Generator(session, new GenerationOptions { MaxNewTokens = decode + 1 }, stopTokenIds: []);
        var clock = Stopwatch.StartNew();
        generator.AppendTokens(ids);            // runs the prompt
        generator.GenerateNextToken();          // picks the first token from the prompt's logits
        double prefill = clock.Elapsed.TotalSeconds;
        clock.Restart();
        for (int i = 0; i < decode; i++) generator.GenerateNextToken();   // each runs one token, then picks the next
        double decodeSeconds = clock.Elapsed.TotalSeconds;
        return ((ids.Length / prefill, decode / decodeSeconds), generator.Tokens.Skip(ids.Length).ToArray());
    }

    private static ((double, double), int[]) RunGenAi(GenAiModel model, int[] ids, int decode)
    {
        using var p = new GeneratorParams(model);
        p.SetSearchOption("max_length", ids.Length + decode + 1);
        p.SetSearchOption("min_length", ids.Length + decode + 1);   // no early end-of-sequence stop: same work as ours
        p.SetSearchOption("do_sample", false);
        using var generator = new GenAiGenerator(model, p);
        var clock = Stopwatch.StartNew();
        generator.AppendTokens(ids);             // runs the prompt
        generator.GenerateNextToken();           // picks the first token from the prompt's logits
        double prefill = clock.Elapsed.TotalSeconds;
        clock.Restart();
        for (int i = 0; i < decode; i++) generator.GenerateNextToken();   // each runs one token, then picks the next
        double decodeSeconds = clock.Elapsed.TotalSeconds;
        var tokens = generator.GetSequence(0).ToArray().Skip(ids.Length).ToArray();
        return ((ids.Length / prefill, decode / decodeSeconds), tokens);
    }

    /// <summary>
    /// onnxruntime-genai reads one graph per directory, named in genai_config.json: a directory of links to the
    /// profile's graph and the weights, with the thread count set for its session.
    /// </summary>
    private static string GenAiView(string dir, PackageManifest manifest, string profile, int threads)
    {
        string view = Path.Combine(Path.GetTempPath(), "behemoth-genai-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(view);
        var info = manifest.Profiles[profile];
        foreach (var f in info.Files.Append(info.Graph))
            File.CreateSymbolicLink(Path.Combine(view, f), Path.Combine(dir, f));
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "genai_config.json")))!;
        var decoder = config["model"]!["decoder"]!;
        decoder["filename"] = info.Graph;
        decoder["session_options"]!["intra_op_num_threads"] = threads;
        decoder["session_options"]!["inter_op_num_threads"] = 1;
        File.WriteAllText(Path.Combine(view, "genai_config.json"), config.ToJsonString());
        return view;
    }
}
