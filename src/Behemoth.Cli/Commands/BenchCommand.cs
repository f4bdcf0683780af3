using System.CommandLine;
using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using Behemoth.Formats.Errors;
using Behemoth.Package;
using Behemoth.Runtime;
using Behemoth.Runtime.Generation;
using Microsoft.ML.OnnxRuntime;

namespace Behemoth.Cli.Commands;

/// <summary>
/// <c>behemoth bench</c>: speed and memory of one profile of a package on this machine: load time and bytes read,
/// prefill and decode tokens per second, time to first token, and peak memory against what the profile should need
/// (its weights + the KV cache + the runtime's own baseline, measured before loading).
/// </summary>
internal static class BenchCommand
{
    public static Command Create()
    {
        var package = new Argument<string>("package") { Description = "Behemoth package directory" };
        var choice = new ProfileChoice();
        var promptTokens = new Option<int>("--prompt-tokens") { Description = "Prompt length (random token ids)", DefaultValueFactory = _ => 128 };
        var decodeTokens = new Option<int>("--decode-tokens") { Description = "Tokens generated after the prompt (greedy)", DefaultValueFactory = _ => 64 };
        var runs = new Option<int>("--runs") { Description = "Measured runs after one warm-up; the median is reported", DefaultValueFactory = _ => 3 };
        var threads = new Option<int>("--threads") { Description = $"ONNX Runtime intra-op threads on the CPU provider, at most {ThreadLimits.Max} (4 × cores); 0 = its default, one per core, and --provider applies", DefaultValueFactory = _ => 0 };
        var json = new Option<bool>("--json") { Description = "Print one JSON object" };
        var provider = ProviderOption.Create();
        var command = new Command("bench", "Measure prefill and decode speed, time to first token and peak memory of a package profile")
        {
            package, promptTokens, decodeTokens, runs, threads, json, provider,
        };
        choice.AddTo(command);
        command.SetAction((parse, cancellationToken) => Task.FromResult(CliErrors.Run(parse, () =>
        {
            string dir = parse.GetValue(package)!;
            int prompt = parse.GetValue(promptTokens), decode = parse.GetValue(decodeTokens), runCount = parse.GetValue(runs);
            if (prompt < 1 || decode < 1 || runCount < 1)
                throw new BehemothException("--prompt-tokens, --decode-tokens and --runs must be at least 1");
            int intraOp = ThreadLimits.Threads(parse.GetValue(threads));
            if ((long)prompt + decode > int.MaxValue)
                throw new BehemothException($"--prompt-tokens + --decode-tokens = {(long)prompt + decode} is more tokens than any context holds");

            // Baseline: the runtime loaded (ONNX Runtime's environment, this code jitted), no package.
            _ = OrtEnv.Instance();
            long? baseline = ProcessStats.Rss(), readBefore = ProcessStats.BytesRead();
            var clock = Stopwatch.StartNew();
            using var session = choice.Open(parse, dir, prompt + decode, ProviderOption.Parse(parse.GetValue(provider)), cancellationToken,
                intraOpThreads: intraOp);
            double loadSeconds = clock.Elapsed.TotalSeconds;
            long? readDuringLoad = ProcessStats.BytesRead() - readBefore;
            var shape = session.Shape;
            if ((long)prompt + decode > shape.ContextLength)
                throw new BehemothException($"--prompt-tokens + --decode-tokens = {prompt + decode} exceeds the package's context length of {shape.ContextLength}");

            var random = new Random(1234);
            int bos = shape.BosTokenId ?? throw new BehemothException(
                $"{Path.Combine(dir, PackageManifest.FileName)}: model.bos_token_id is not set; the benchmark prompt starts with the model's beginning-of-sequence id");
            int[] ids = [bos, .. Enumerable.Range(1, prompt - 1).Select(_ => random.Next(4, shape.VocabSize))];
            var results = new List<(double Prefill, double Decode, double Ttft, double Overhead)>();
            // greedy, never stopping early: the generation loop every consumer runs, timed around ONNX Runtime's runs
            var greedy = new GenerationOptions { MaxNewTokens = decode };
            for (int r = 0; r <= runCount; r++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                using var generator = new Generator(session, greedy, stopTokenIds: []);
                var t = Stopwatch.StartNew();
                generator.AppendTokens(ids);
                generator.GenerateNextToken(cancellationToken);
                double ttft = t.Elapsed.TotalSeconds;
                var d = Stopwatch.StartNew();
                var inRun = session.RunTime;
                for (int i = 0; i < decode; i++)
                {
                    generator.GetLastLogits(cancellationToken);      // runs the token sampled last: one decode step
                    if (!generator.IsDone) generator.GenerateNextToken(cancellationToken);
                }
                double decodeSeconds = d.Elapsed.TotalSeconds, runSeconds = (session.RunTime - inRun).TotalSeconds;
                if (r > 0) results.Add((prompt / ttft, decode / decodeSeconds, ttft, (decodeSeconds - runSeconds) / decodeSeconds));     // run 0 warms up
            }

            long? peak = ProcessStats.PeakRss();
            long weights = ProfileSelection.WeightBytes(session.Manifest, session.Profile);
            long kv = ProfileSelection.KvCacheBytes(session.Manifest, prompt + decode);
            var info = session.Manifest.Profiles[session.Profile];
            var report = new JsonObject
            {
                ["package"] = dir,
                ["profile"] = session.Profile,
                ["provider"] = session.Provider.ToString().ToLowerInvariant(),
                ["quantization"] = session.Manifest.Quantization.Weights.ToManifestName(),
                ["experts_loaded"] = info.Experts.Sum(l => l.ExpertIds.Count),
                ["prompt_tokens"] = prompt,
                ["decode_tokens"] = decode,
                ["runs"] = runCount,
                ["load_seconds"] = loadSeconds,
                ["bytes_read_during_load"] = readDuringLoad,
                ["profile_weight_bytes"] = weights,
                ["prefill_tokens_per_second"] = Median(results.Select(x => x.Prefill)),
                ["decode_tokens_per_second"] = Median(results.Select(x => x.Decode)),
                ["time_to_first_token_seconds"] = Median(results.Select(x => x.Ttft)),
                ["decode_time_outside_onnxruntime_fraction"] = Median(results.Select(x => x.Overhead)),
                ["baseline_rss_bytes"] = baseline,
                ["kv_cache_bytes"] = kv,
                ["peak_rss_bytes"] = peak,
                ["peak_rss_over_expected"] = peak is long p && baseline is long b ? (double)p / (weights + kv + b) : null,
            };
            if (parse.GetValue(json))
            {
                Console.WriteLine(report.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
                return 0;
            }
            Console.WriteLine($"{dir} [{session.Profile}, {report["quantization"]}, {report["provider"]}], {report["experts_loaded"]} routed experts");
            Console.WriteLine($"  load {loadSeconds:F2} s, {Mb(readDuringLoad)} read; profile weights {Mb(weights)}");
            Console.WriteLine($"  prefill {prompt} tokens: {(double)report["prefill_tokens_per_second"]!:F1} tok/s, time to first token {(double)report["time_to_first_token_seconds"]! * 1000:F0} ms");
            Console.WriteLine($"  decode {decode} tokens: {(double)report["decode_tokens_per_second"]!:F1} tok/s   (median of {runCount} runs; "
                + $"{(double)report["decode_time_outside_onnxruntime_fraction"]! * 100:F1}% of it outside ONNX Runtime's runs)");
            Console.WriteLine($"  peak RSS {Mb(peak)} = {report["peak_rss_over_expected"]?.GetValue<double>():F2}× (weights {Mb(weights)} + KV cache {Mb(kv)} + runtime baseline {Mb(baseline)})");
            return 0;
        })));
        return command;
    }

    private static double Median(IEnumerable<double> values)
    {
        var sorted = values.Order().ToArray();
        return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
    }

    private static string Mb(long? bytes) => bytes is long b ? $"{b / 1e6:F1} MB" : "n/a";
}
