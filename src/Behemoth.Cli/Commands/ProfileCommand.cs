using System.CommandLine;
using Behemoth.Exporter.Pruning;
using Behemoth.Formats.Errors;
using Behemoth.Reference;
using Behemoth.Text;

namespace Behemoth.Cli.Commands;

/// <summary><c>behemoth profile</c>: per MoE layer and expert, how a domain's calibration text uses the experts.</summary>
internal static class ProfileCommand
{
    public static Command Create()
    {
        var model = new Argument<string>("model") { Description = "Hugging Face model directory (config.json, safetensors, tokenizer)" };
        var calib = new Option<string[]>("--calib") { Description = "Calibration text files (.jsonl with \"text\" or en/it pairs, or plain text)", Required = true, AllowMultipleArgumentsPerToken = true };
        var domain = new Option<string?>("--domain") { Description = "Domain name for all the files (default: one domain per file, named by the file)" };
        var output = new Option<string>("--out") { Description = "stats.json to write; domains already in it (same model) are kept or replaced", Required = true };
        var plot = new Option<string?>("--plot") { Description = "Also write a heatmap PNG: layers × experts, one panel per domain" };
        var maxTokens = new Option<int>("--max-tokens") { Description = "Calibration tokens per domain at most", DefaultValueFactory = _ => 16384 };
        var command = new Command("profile", "Measure expert routing frequency, gate mass, REAP and output norms on calibration text")
        {
            model, calib, domain, output, plot, maxTokens,
        };
        command.SetAction((parse, cancellationToken) => Task.FromResult(CliErrors.Run(parse, () =>
        {
            string dir = parse.GetValue(model)!, outPath = parse.GetValue(output)!;
            var files = parse.GetValue(calib)!;
            using var reference = ReferenceModel.Load(dir);
            var tokenizer = ModelTokenizer.Open(dir);
            var (bos, eos) = CalibrationSets.DocumentBounds(reference.Config, tokenizer, dir);
            var statsModel = StatsModel.Of(reference);
            var domains = new Dictionary<string, DomainStats>();
            if (File.Exists(outPath))
            {
                var existing = ExpertStats.Read(outPath);
                existing.EnsureFor(statsModel, outPath);
                foreach (var (k, v) in existing.Domains) domains[k] = v;
            }
            var groups = parse.GetValue(domain) is { } single
                ? [(single, files)]
                : files.Select(f => (Path.GetFileNameWithoutExtension(f), new[] { f })).ToArray();
            foreach (var (name, group) in groups)
            {
                var set = CalibrationSets.Load(name, group, tokenizer, bos, eos, parse.GetValue(maxTokens));
                Console.Error.WriteLine($"{name}: {set.Sequences.Sum(s => s.Length):N0} tokens from {string.Join(", ", group)}");
                // sources are recorded relative to the stats file, so the pair can move together (export re-reads them for the reconstruction criterion and kd)
                string statsDir = Path.GetDirectoryName(Path.GetFullPath(outPath))!;
                set = set with { Sources = group.Select(f => Path.GetRelativePath(statsDir, Path.GetFullPath(f))).ToArray() };
                domains[name] = ExpertProfiler.ProfileDomain(reference, set, new Progress(m => Console.Error.WriteLine("  " + m)), cancellationToken);
            }
            var stats = new ExpertStats { Model = statsModel, Domains = domains };
            stats.Write(outPath);
            Console.WriteLine($"{outPath}: {domains.Count} domain(s), {statsModel.MoeLayers.Count} MoE layers × {statsModel.Experts} experts");
            if (parse.GetValue(plot) is { } png)
            {
                ExpertHeatmap.Write(stats, png);
                Console.WriteLine($"{png}: heatmap of routing frequency");
            }
            return 0;
        })));
        return command;
    }

    private sealed class Progress(Action<string> report) : IProgress<string>
    {
        public void Report(string value) => report(value);
    }
}
