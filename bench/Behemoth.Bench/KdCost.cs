using System.CommandLine;
using System.Diagnostics;
using System.Text.Json.Nodes;
using Behemoth.Exporter.Pruning;
using Behemoth.Reference;

namespace Behemoth.Bench;

/// <summary>
/// <c>kd-cost CONFIG --work DIR</c>: the cost of kd on a model of CONFIG's shape. Writes a random-weight checkpoint with
/// the config's per-layer shape but only <c>--layers</c> decoder layers (every layer of these models has the same shape,
/// so a layer's kd cost is the same whatever the depth), profiles random token sequences, and distils a profile keeping
/// <c>--keep</c> of every layer's experts once per step count (the first run warms up the JIT and the checkpoint's pages;
/// the last one is measured): the optimizer steps' own wall time gives the time per step, the rest the per-layer fixed
/// cost (propagation, teacher targets). Extrapolates to the full depth and the default step count,
/// and reports the process's peak resident memory (VmHWM) next to the bound kd's buffers imply.
/// </summary>
internal static class KdCost
{
    public static Command Create()
    {
        var config = new Argument<string>("config") { Description = "A config.json, e.g. tests/fixtures/configs/OLMoE-1B-7B-0924.transcribed.json" };
        var work = new Option<string>("--work") { Description = "Scratch directory for the checkpoint", Required = true };
        var layers = new Option<int>("--layers") { Description = "Decoder layers to write and distil", DefaultValueFactory = _ => 1 };
        var tokens = new Option<int>("--tokens") { Description = "Calibration tokens (random ids)", DefaultValueFactory = _ => 4096 };
        var steps = new Option<int[]>("--steps") { Description = "Step counts, one run each; the last is measured", AllowMultipleArgumentsPerToken = true, DefaultValueFactory = _ => [1, 3] };
        var keep = new Option<double>("--keep") { Description = "Share of each layer's experts kept", DefaultValueFactory = _ => 0.5 };
        var command = new Command("kd-cost", "Time per step and peak memory of kd on a random-weight model of a config's shape, extrapolated to its depth")
        {
            config, work, layers, tokens, steps, keep,
        };
        command.SetAction(parse =>
        {
            string dir = Path.GetFullPath(parse.GetValue(work)!);
            string checkpoint = Path.Combine(dir, "checkpoint");
            var json = JsonNode.Parse(File.ReadAllText(parse.GetValue(config)!))!.AsObject();
            int fullLayers = json["num_hidden_layers"]!.GetValue<int>();
            int n = parse.GetValue(layers);
            json["num_hidden_layers"] = n;
            Directory.CreateDirectory(dir);
            string cut = Path.Combine(dir, "config.json");
            File.WriteAllText(cut, json.ToJsonString());
            var clock = Stopwatch.StartNew();
            long bytes = RandomCheckpoint.Write(cut, checkpoint);
            Console.WriteLine($"random checkpoint, {n} of {fullLayers} layers: {bytes / 1e9:F2} GB in {clock.Elapsed.TotalSeconds:F0} s");

            using var model = ReferenceModel.Load(checkpoint);
            var c = model.Config;
            var random = new Random(7);
            int total = parse.GetValue(tokens);
            var seqs = Enumerable.Range(0, (total + CalibrationSets.Window - 1) / CalibrationSets.Window)
                .Select(_ => Enumerable.Range(0, CalibrationSets.Window).Select(_ => random.Next(c.VocabSize)).ToArray()).ToList();
            var domain = new CalibrationDomain("random", seqs, []);
            clock.Restart();
            var stats = new ExpertStats { Model = StatsModel.Of(model), Domains = new() { ["random"] = ExpertProfiler.ProfileDomain(model, domain) } };
            Console.WriteLine($"profiled {seqs.Sum(s => s.Length)} tokens in {clock.Elapsed.TotalSeconds:F0} s");

            var results = new List<(int Steps, double Seconds, double StepSeconds)>();
            foreach (int s in parse.GetValue(steps)!)
            {
                var options = new KdOptions { Steps = s, Tokens = total, MaxPasses = int.MaxValue };
                var carver = new ProfileCarver(model, stats, _ => domain) { Kd = options };
                var target = new CarveTarget("half", "", new Dictionary<string, double> { ["random"] = 1 },
                    scores => PruningPlanner.KeepRatio(scores, c.Moe.TopK, parse.GetValue(keep)));
                carver.Carve(target, PruningCriterion.Reap, Distillation.Kd, new Progress());
                var report = carver.KdReports["half"];
                results.Add((s, report.Elapsed.TotalSeconds, report.Layers.Sum(l => l.TrainSeconds) / report.Layers.Count / s));
                Console.WriteLine($"{s} steps per layer × {report.Layers.Count} layers: {report.Elapsed.TotalSeconds:F1} s on {report.TrainTokens} training tokens");
            }
            // the last run (JIT warm, checkpoint pages read): its measured step time, and the rest of its time per layer
            var (s2, t2, perStep) = results[^1];
            double fixedPerLayer = t2 / n - s2 * perStep;
            int defaultSteps = new KdOptions().Steps;
            double full = fullLayers * (fixedPerLayer + defaultSteps * perStep);
            int kept = (int)Math.Round(c.Moe.NumExperts * parse.GetValue(keep));
            long expertBytes = 3L * c.HiddenSize * c.Moe.ExpertIntermediate * 4;
            long streams = 5L * total * c.HiddenSize * 4;        // student and teacher residual streams, the layer's inputs (per document and joined), its targets
            long layer = 5L * kept * expertBytes;                // the kept experts, their gradients, two Adam moments, the best step
            Console.WriteLine($"per step {perStep:F2} s, fixed per layer {fixedPerLayer:F1} s; {fullLayers} layers × {defaultSteps} steps ≈ {full / 3600:F1} h on this machine");
            Console.WriteLine($"peak resident memory (VmHWM) {PeakRss() / 1e9:F2} GB; kd's buffers: residual streams and targets {streams / 1e9:F2} GB "
                + $"+ one layer's {kept} kept experts ×5 {layer / 1e9:F2} GB (the checkpoint stays memory-mapped; pages read count in RSS)");
            if (Directory.Exists(checkpoint)) Directory.Delete(checkpoint, recursive: true);
            return 0;
        });
        return command;
    }

    private static long PeakRss()
    {
        foreach (var line in File.ReadLines("/proc/self/status"))
            if (line.StartsWith("VmHWM:")) return long.Parse(line.Split((char[])[' ', '\t'], StringSplitOptions.RemoveEmptyEntries)[1]) * 1024;
        return 0;
    }

    private sealed class Progress : IProgress<string>
    {
        public void Report(string value) => Console.Error.WriteLine("  " + value);
    }
}
