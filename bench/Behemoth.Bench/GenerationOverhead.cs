using System.CommandLine;
using System.Diagnostics;
using System.Text.Json.Nodes;
using Behemoth.Runtime;
using Behemoth.Runtime.Generation;
using Behemoth.Text;

namespace Behemoth.Bench;

/// <summary>
/// <c>generation-overhead</c>: how much of a text generation's time is spent outside ONNX Runtime's runs (binding,
/// copying logits, sampling, detokenizing, thread hops), end to end through <see cref="TextGenerator"/> as an app
/// calls it: greedy and sampled (temperature 0.8, top-p 0.9), median of the runs after two seconds of warm-up.
/// </summary>
internal static class GenerationOverhead
{
    public static Command Create()
    {
        var package = new Argument<string>("package") { Description = "Package directory" };
        var profile = new Option<string>("--profile") { Description = "Device profile", DefaultValueFactory = _ => "full" };
        var tokens = new Option<int>("--tokens") { Description = "New tokens per generation", DefaultValueFactory = _ => 128 };
        var runs = new Option<int>("--runs") { Description = "Measured runs per mode after one warm-up", DefaultValueFactory = _ => 5 };
        var threads = new Option<int>("--threads") { Description = "ONNX Runtime intra-op threads (0: its default)", DefaultValueFactory = _ => 0 };
        BenchThreads.Bound(threads);
        var command = new Command("generation-overhead", "Share of a text generation's time spent outside ONNX Runtime's runs") { package, profile, tokens, runs, threads };
        command.SetAction(async parse =>
        {
            string dir = parse.GetValue(package)!;
            using var session = DecoderSession.Open(dir, parse.GetValue(profile)!, ExecutionProvider.Cpu, parse.GetValue(threads));
            var tokenizer = ModelTokenizer.Load(dir);
            const string prompt = "English: The weather is nice today and we are going to the sea.\nItalian:";
            var report = new JsonObject { ["package"] = dir, ["profile"] = session.Profile, ["new_tokens"] = parse.GetValue(tokens) };
            foreach (var (mode, options) in new[]
            {
                ("greedy", new GenerationOptions { MaxNewTokens = parse.GetValue(tokens) }),
                ("sampled", new GenerationOptions { MaxNewTokens = parse.GetValue(tokens), Temperature = 0.8f, TopP = 0.9f, Seed = 1 }),
            })
            {
                var shares = new List<double>();
                var perToken = new List<double>();
                // warm-up: generations for two seconds first, so that the JIT has compiled the hot paths fully
                // (.NET starts methods unoptimised and recompiles those called often): steady state is measured
                var warming = Stopwatch.StartNew();
                for (int r = 0; shares.Count < parse.GetValue(runs) && r < 1000; r++)
                {
                    bool warmUp = warming.IsRunning && warming.Elapsed < TimeSpan.FromSeconds(2);
                    if (!warmUp) warming.Stop();
                    // the decode phase: from the first text piece (the prefill and setup are behind) to the last
                    var stats = new GenerationStats();
                    TimeSpan inRun = default;
                    long started = 0;
                    int firstTokens = 0;
                    await foreach (var _ in TextGenerator.GenerateAsync(session, tokenizer, prompt, options, stats))
                        if (started == 0) (started, inRun, firstTokens) = (Stopwatch.GetTimestamp(), session.RunTime, stats.GeneratedTokens);
                    double total = Stopwatch.GetElapsedTime(started).TotalSeconds, run = (session.RunTime - inRun).TotalSeconds;
                    int steps = stats.GeneratedTokens - firstTokens;
                    if (warmUp || steps < 8) continue;       // warm-up, or too short to measure
                    shares.Add((total - run) / total);
                    perToken.Add((total - run) / steps * 1e3);
                }
                report[$"{mode}_runs_measured"] = shares.Count;
                report[$"{mode}_outside_onnxruntime_fraction"] = Statistics.Median(shares);
                report[$"{mode}_outside_onnxruntime_ms_per_token"] = Statistics.Median(perToken);
            }
            Console.WriteLine(report.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }));
            return 0;
        });
        return command;
    }
}
