using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Behemoth.Exporter.Export;
using Behemoth.Exporter.Pruning;
using Behemoth.Package;
using Behemoth.Reference;
using Behemoth.Runtime;
using Behemoth.Runtime.Generation;
using Behemoth.Text;
using Microsoft.ML.Tokenizers;

namespace Behemoth.Bench;

/// <summary>
/// <c>pruning-table</c>: the quality table of docs/pruning.md. For fp32 and int4, for each criterion, one package
/// holds the keep ratios × distillations as profiles (they share weights); every profile is measured through the
/// runtime on behemoth-nano's held-out slices (perplexity per language and domain) and on held-out English→Italian
/// pairs (greedy chrF), next to the unpruned model. Device profiles' bytes come from an export with models/devices.
/// </summary>
internal static class PruningTable
{
    private static readonly double[] Ratios = [0.75, 0.5, 0.25];
    private static readonly PruningCriterion[] AllCriteria = [PruningCriterion.Random, PruningCriterion.Frequency, PruningCriterion.Reap, PruningCriterion.Reconstruction];
    private static readonly Distillation[] AllDistillations = [Distillation.None, Distillation.Merge, Distillation.Kd];
    private static readonly string[] DistilOrder = AllDistillations.Select(d => d.ToString().ToLowerInvariant()).ToArray();

    public static Command Create()
    {
        var model = new Option<string>("--model") { DefaultValueFactory = _ => "models/behemoth-nano" };
        var stats = new Option<string>("--stats") { DefaultValueFactory = _ => "models/behemoth-nano/expert-stats.json" };
        var devices = new Option<string[]>("--devices") { AllowMultipleArgumentsPerToken = true, DefaultValueFactory = _ => Directory.GetFiles("models/devices", "*.json").Order().ToArray() };
        var output = new Option<string>("--out") { DefaultValueFactory = _ => "docs/pruning.md" };
        var tokensPerSlice = new Option<int>("--tokens-per-slice") { Description = "Held-out tokens per language/domain slice", DefaultValueFactory = _ => 2048 };
        var pairs = new Option<int>("--pairs") { Description = "Held-out en→it pairs translated for chrF", DefaultValueFactory = _ => 100 };
        var work = new Option<string>("--work") { DefaultValueFactory = _ => Path.Combine(Path.GetTempPath(), "behemoth-pruning-table") };
        var rerender = new Option<bool>("--render-only") { Description = "Rewrite the markdown from the measurements already in the .json beside it" };
        var quants = new Option<string[]>("--quants") { AllowMultipleArgumentsPerToken = true, DefaultValueFactory = _ => ["fp32", "int4"] };
        var criteria = new Option<string[]>("--criteria") { AllowMultipleArgumentsPerToken = true, DefaultValueFactory = _ => AllCriteria.Select(c => c.ToString().ToLowerInvariant()).ToArray() };
        var kdCriteria = new Option<string[]>("--kd-criteria") { Description = "Criteria whose profiles are also distilled with kd", AllowMultipleArgumentsPerToken = true, DefaultValueFactory = _ => ["reap"] };
        var refitStudy = new Option<bool>("--refit-study") { Description = "Also measure the former refit, its router and down-projection steps alone, and refit without the router step on the pruned model's activations (REAP, 50%, int4)", DefaultValueFactory = _ => true };
        var command = new Command("pruning-table", "Held-out perplexity and en→it chrF of pruned and distilled profiles (docs/pruning.md)")
        {
            model, stats, devices, output, tokensPerSlice, pairs, work, rerender, quants, criteria, kdCriteria, refitStudy,
        };
        command.SetAction(parse =>
        {
            string jsonPath = Path.ChangeExtension(parse.GetValue(output)!, ".json");
            if (parse.GetValue(rerender))
            {
                var saved = JsonSerializer.Deserialize<Saved>(File.ReadAllText(jsonPath))!;
                File.WriteAllText(parse.GetValue(output)!, Render(saved.Rows, saved.Devices, saved.DeviceRows, saved.RefitRows, saved.TokensPerSlice, saved.Pairs, TimeSpan.FromMinutes(saved.Minutes)));
                return 0;
            }
            var clock = Stopwatch.StartNew();
            string modelDir = parse.GetValue(model)!, statsPath = parse.GetValue(stats)!, workDir = parse.GetValue(work)!;
            Directory.CreateDirectory(workDir);
            using var reference = ReferenceModel.Load(modelDir);
            var expertStats = ExpertStats.Read(statsPath);
            expertStats.EnsureFor(StatsModel.Of(reference), statsPath);
            // the checkpoint's own BOS and EOS frame the documents, as behemoth eval does
            var tokenizer = Behemoth.Runtime.Tokenizer.Load(modelDir, reference.Config.BosTokenId, reference.Config.EosTokenIds);
            var carver = ProfileCarver.FromStats(reference, expertStats, statsPath, modelDir);
            var everything = expertStats.Domains.Keys.ToDictionary(k => k, _ => 1.0);
            var eval = new HeldOut(Path.Combine(modelDir, "eval"), tokenizer, parse.GetValue(tokensPerSlice), parse.GetValue(pairs));
            var rows = new List<Row>();
            // a profile is carved once and exported at every precision (kd and refit train in float32 from the checkpoint)
            var carved = new Dictionary<(PruningCriterion, double, Distillation), ProfileSpec>();
            var kdCriteriaSet = parse.GetValue(kdCriteria)!.Select(c => DeviceCriterion(c)).ToHashSet();
            var quantList = parse.GetValue(quants)!.Select(q => Enum.Parse<WeightType>(q, ignoreCase: true)).ToArray();
            var criteriaList = parse.GetValue(criteria)!.Select(DeviceCriterion).ToArray();
            var kdSeconds = new Dictionary<string, double>();
            var refitRows = new List<Row>();
            foreach (var quant in quantList)
            {
                Row? full = null;
                foreach (var criterion in criteriaList)
                {
                    var profiles = new List<(ProfileSpec Spec, double Ratio, Distillation Distil)>();
                    foreach (double ratio in Ratios)
                        foreach (var distil in AllDistillations.Where(d => d != Distillation.Kd || kdCriteriaSet.Contains(criterion)))
                        {
                            string name = $"keep{ratio * 100:0}-{distil.ToString().ToLowerInvariant()}";
                            if (!carved.TryGetValue((criterion, ratio, distil), out var spec))
                            {
                                var target = new CarveTarget(name, $"{ratio:P0} of the experts", everything,
                                    scores => PruningPlanner.KeepRatio(scores, reference.Config.Moe.TopK, ratio));
                                var clockKd = Stopwatch.StartNew();
                                carved[(criterion, ratio, distil)] = spec = carver.Carve(target, criterion, distil);
                                if (distil == Distillation.Kd) Console.Error.WriteLine($"{criterion} {name}: kd in {clockKd.Elapsed.TotalSeconds:F0} s");
                            }
                            profiles.Add((spec, ratio, distil));
                        }
                    string package = Path.Combine(workDir, $"{quant.ToString().ToLowerInvariant()}-{criterion.ToString().ToLowerInvariant()}");
                    PackageExporter.Export(modelDir, package, new ExportOptions { Quant = quant, Profiles = profiles.Select(p => p.Spec).ToList() }, overwrite: true);
                    var manifest = PackageReader.ReadManifest(package);
                    if (full is null)
                    {
                        full = eval.Measure(package, "full") with { Quant = quant, Criterion = "—", Distil = "—", Keep = 1.0, WeightBytes = manifest.Profiles["full"].WeightBytes ?? 0 };
                        rows.Add(full);
                        Console.Error.WriteLine($"{quant} full: ppl {full.All:F2}, chrF {full.Chrf:F2}");
                    }
                    foreach (var (p, ratio, distil) in profiles)
                    {
                        var row = eval.Measure(package, p.Name) with
                        {
                            Quant = quant, Criterion = criterion.ToString().ToLowerInvariant(), Distil = distil.ToString().ToLowerInvariant(),
                            Keep = ratio, WeightBytes = manifest.Profiles[p.Name].WeightBytes ?? 0,
                        };
                        rows.Add(row);
                        Console.Error.WriteLine($"{quant} {criterion} {p.Name}: ppl {row.All:F2} ({100 * (row.All / full.All - 1):+0.0;-0.0}%), chrF {row.Chrf:F2}  [{clock.Elapsed.TotalMinutes:F1} min]");
                    }
                }
            }

            // why refit hurt: the former refit, its two parts alone, and refit without the router step on the pruned model's activations; REAP, 50%, int4
            if (parse.GetValue(refitStudy))
            {
                var parts = new List<ProfileSpec>();
                foreach (RefitParts? part in new RefitParts?[] { RefitParts.RouterAndDown, RefitParts.Router, RefitParts.Down, null })
                {
                    carver.RefitOnFullModelInputs = part;
                    parts.Add(carver.Carve(new CarveTarget($"keep50-{(part is null ? "refit" : "former-" + part.ToString()!.ToLowerInvariant())}", "50% of the experts", everything,
                        scores => PruningPlanner.KeepRatio(scores, reference.Config.Moe.TopK, 0.5)), PruningCriterion.Reap, Distillation.Refit));
                }
                carver.RefitOnFullModelInputs = null;
                string studyPackage = Path.Combine(workDir, "refit-study");
                PackageExporter.Export(modelDir, studyPackage, new ExportOptions { Quant = WeightType.Int4, Profiles = parts }, overwrite: true);
                foreach (var p in parts)
                {
                    var row = eval.Measure(studyPackage, p.Name) with { Quant = WeightType.Int4, Criterion = "reap", Distil = p.Name["keep50-".Length..], Keep = 0.5 };
                    refitRows.Add(row);
                    Console.Error.WriteLine($"study {p.Name}: ppl {row.All:F2}, chrF {row.Chrf:F2}");
                }
            }

            // device profiles, as behemoth export --stats --devices would write them (REAP), without distillation and with kd
            var deviceRows = new List<string>();
            var deviceMeasured = new List<DeviceRow>();
            var deviceSpecs = parse.GetValue(devices)!.Select(DeviceSpec.Read).ToArray();
            var deviceProfiles = new List<ProfileSpec>();
            foreach (var d in deviceSpecs)
            {
                deviceProfiles.Add(carver.Carve(CarveTarget.ForDevice(d, reference.Config), PruningCriterion.Reap, Distillation.None));
                var kdClock = Stopwatch.StartNew();
                var kd = carver.Carve(CarveTarget.ForDevice(d with { Name = d.Name + "-kd" }, reference.Config), PruningCriterion.Reap, Distillation.Kd);
                kdSeconds[d.Name] = kdClock.Elapsed.TotalSeconds;
                deviceProfiles.Add(kd);
            }
            string devicePackage = Path.Combine(workDir, "devices");
            PackageExporter.Export(modelDir, devicePackage, new ExportOptions { Quant = WeightType.Int4, Profiles = deviceProfiles }, overwrite: true);
            var deviceManifest = PackageReader.ReadManifest(devicePackage);
            foreach (var d in deviceSpecs)
                foreach (var (profile, distil) in new[] { (d.Name, "none"), (d.Name + "-kd", "kd") })
                {
                    var info = deviceManifest.Profiles[profile];
                    long kv = ProfileSelection.KvCacheBytes(deviceManifest, d.ContextTokens);
                    var m = eval.Measure(devicePackage, profile);
                    var own = m.Slices.Keys.Where(s => OwnSlice(s, d.Domains.Keys)).ToArray();
                    double ownPpl = Math.Exp(own.Sum(s => m.SliceTokens[s] * Math.Log(m.Slices[s])) / own.Sum(s => m.SliceTokens[s]));
                    carver.KdReports.TryGetValue(profile, out var report);
                    deviceMeasured.Add(new DeviceRow(d.Name, distil, info.Experts.Sum(l => l.ExpertIds.Count), info.WeightBytes ?? 0, kv, d.MemoryBytes,
                        ownPpl, m.Translation, m.All, m.Chrf, distil == "kd" ? kdSeconds[d.Name] : 0, report is null ? 0 : report.TrainTokens, m.Slices));
                    Console.Error.WriteLine($"device {profile}: own domains {ownPpl:F2}, en→it {m.Translation:F2}, all {m.All:F2}, chrF {m.Chrf:F2}");
                }

            File.WriteAllText(parse.GetValue(output)!, Render(rows, deviceRows, deviceMeasured, refitRows, parse.GetValue(tokensPerSlice), parse.GetValue(pairs), clock.Elapsed));
            File.WriteAllText(jsonPath, JsonSerializer.Serialize(new Saved(rows, deviceRows, parse.GetValue(tokensPerSlice), parse.GetValue(pairs), clock.Elapsed.TotalMinutes) { DeviceRows = deviceMeasured, RefitRows = refitRows },
                new JsonSerializerOptions { WriteIndented = true }));
            Console.Error.WriteLine($"wrote {parse.GetValue(output)} in {clock.Elapsed.TotalMinutes:F1} min");
            return 0;
        });
        return command;
    }

    internal sealed record Saved(List<Row> Rows, List<string> Devices, int TokensPerSlice, int Pairs, double Minutes)
    {
        public List<DeviceRow> DeviceRows { get; init; } = [];
        public List<Row> RefitRows { get; init; } = [];
    }

    /// <summary>A device profile measured: own domains = the held-out slices of the languages (and the en-it pairs) its calibration mix names.</summary>
    internal sealed record DeviceRow(string Device, string Distil, int Experts, long WeightBytes, long KvBytes, long BudgetBytes, double OwnDomains,
        double Translation, double All, double Chrf, double KdSeconds, int KdTrainTokens, Dictionary<string, double> Slices);

    /// <summary>Whether a held-out slice (en_tech, en-it, ...) is in one of a device's calibration domains (en, en-it, ...).</summary>
    private static bool OwnSlice(string slice, IEnumerable<string> domains) =>
        domains.Any(d => slice == d || (!slice.Contains('-') && slice.Split('_')[0] == d));

    private static PruningCriterion DeviceCriterion(string name) => Enum.Parse<PruningCriterion>(name, ignoreCase: true);

    internal sealed record Row
    {
        public WeightType Quant { get; init; }
        public string Criterion { get; init; } = "";
        public string Distil { get; init; } = "";
        public double Keep { get; init; }
        public long WeightBytes { get; init; }
        public Dictionary<string, double> Slices { get; init; } = new();
        public Dictionary<string, long> SliceTokens { get; init; } = new();
        public Dictionary<string, double> Languages { get; init; } = new();
        public double All { get; init; }
        public double Translation { get; init; }
        public double Chrf { get; init; }
    }

    private static string Render(List<Row> rows, List<string> devices, List<DeviceRow> deviceRows, List<Row> refitRows, int tokensPerSlice, int pairCount, TimeSpan elapsed)
    {
        var sb = new StringBuilder();
        var langs = new[] { "en", "it", "fr", "de", "es" };
        sb.AppendLine("# Pruning and distillation: what each byte saved costs");
        sb.AppendLine();
        sb.AppendLine("Generated by one command (it took " + $"{elapsed.TotalMinutes:F0} minutes on this 2-core machine):");
        sb.AppendLine();
        sb.AppendLine("```sh");
        sb.AppendLine("dotnet run --project bench/Behemoth.Bench -c Release -- pruning-table");
        sb.AppendLine("```");
        sb.AppendLine();
        sb.AppendLine($"behemoth-nano (4 MoE layers × 16 routed experts, top-1, plus a shared expert). Experts are ranked on the calibration text in "
            + "`models/behemoth-nano/calib` (all six domains, equal weights; `expert-stats.json` made by `behemoth profile`), every layer keeps the same "
            + "share of its experts, and each profile is measured through the runtime on held-out text the calibration never saw: perplexity on the "
            + $"first {tokensPerSlice} tokens of each language/domain slice of `models/behemoth-nano/eval` (per language: all its "
            + $"domains together; *all*: every slice and the translation pairs), and chrF of greedy en→it translation of the first {pairCount} "
            + "held-out pairs. Δ is the change of *all* against the unpruned model at the same precision. Per-slice perplexities are in `pruning.json`.");
        sb.AppendLine();
        sb.AppendLine("Criteria: `random` (seeded; the baseline), `frequency` (share of tokens routed), `reap` (gate weight × expert output norm), "
            + "`reconstruction` (greedy removal minimising the layer-output error on calibration activations). Distillation: `none`, `merge` (each dropped "
            + "expert folded into its most similar kept expert, weighted by usage), `kd` (knowledge distillation, REAP only: the kept experts and their router rows trained by Adam, layer after layer on the pruned "
            + "model's activations, towards the full model's hidden state; see `behemoth export --distil kd`).");
        foreach (var quant in rows.Select(r => r.Quant).Distinct())
        {
            sb.AppendLine();
            sb.AppendLine($"## {quant.ToString().ToLowerInvariant()}");
            sb.AppendLine();
            sb.AppendLine($"| keep | criterion | distil | weights | {string.Join(" | ", langs)} | en→it pairs | all | Δ all | chrF |");
            sb.AppendLine($"|---|---|---|---|{string.Concat(langs.Select(_ => "---|"))}---|---|---|---|");
            var q = rows.Where(r => r.Quant == quant).ToList();
            var full = q.First(r => r.Keep == 1.0);
            foreach (var r in q.OrderByDescending(r => r.Keep).ThenBy(r => Array.IndexOf(AllCriteria.Select(c => c.ToString().ToLowerInvariant()).ToArray(), r.Criterion)).ThenBy(r => Array.IndexOf(DistilOrder, r.Distil)))
                sb.AppendLine($"| {r.Keep:P0} | {r.Criterion} | {r.Distil} | {r.WeightBytes / 1e6:F2} MB | "
                    + string.Join(" | ", langs.Select(l => r.Languages[l].ToString("F1", CultureInfo.InvariantCulture)))
                    + $" | {r.Translation:F1} | {r.All:F2} | {100 * (r.All / full.All - 1):+0.0;-0.0}% | {r.Chrf:F1} |");
        }
        sb.AppendLine();
        sb.AppendLine("## Per language and domain, keep 50%, no distillation (and REAP + kd)");
        foreach (var quant in rows.Select(r => r.Quant).Distinct())
        {
            var q = rows.Where(r => r.Quant == quant && (r.Keep == 1.0 || (r.Keep == 0.5 && (r.Distil == "none" || r.Distil == "kd")))).ToList();
            var slices = q[0].Slices.Keys.Order(StringComparer.Ordinal).ToArray();
            sb.AppendLine();
            sb.AppendLine($"{quant.ToString().ToLowerInvariant()}, held-out perplexity per slice (the other cells are in `pruning.json`):");
            sb.AppendLine();
            sb.AppendLine($"| slice | {string.Join(" | ", q.Select(r => r.Keep == 1.0 ? "100 %" : r.Distil == "kd" ? r.Criterion + " + kd" : r.Criterion))} |");
            sb.AppendLine($"|---|{string.Concat(q.Select(_ => "---|"))}");
            foreach (var slice in slices)
                sb.AppendLine($"| {slice} | {string.Join(" | ", q.Select(r => r.Slices[slice].ToString("F1", CultureInfo.InvariantCulture)))} |");
        }
        sb.AppendLine();
        sb.AppendLine("## What this run shows");
        sb.AppendLine();
        foreach (var line in Findings(rows)) sb.AppendLine("- " + line);
        sb.AppendLine();
        foreach (var line in RefitStudy(rows, refitRows)) sb.AppendLine(line);
        if (refitRows.Count > 0) sb.AppendLine();
        sb.AppendLine("## Device profiles");
        sb.AppendLine();
        sb.AppendLine("`models/devices/*.json` carved at int4 with REAP, without distillation and with kd, as `behemoth export models/behemoth-nano --quant int4 --stats "
            + "models/behemoth-nano/expert-stats.json --devices models/devices/*.json [--distil kd]` writes them; one package, weights shared. *own domains*: "
            + "perplexity over the held-out slices of the device's calibration domains (its languages' slices, and the en→it pairs when it names en-it). "
            + "kd time: carving with kd inside this bench, on this machine's 2 cores (shared with other jobs).");
        sb.AppendLine();
        if (deviceRows.Count == 0)
        {
            sb.AppendLine("| device | routed experts | weights | KV cache at its context | budget | all | chrF |");
            sb.AppendLine("|---|---|---|---|---|---|---|");
            foreach (var d in devices) sb.AppendLine(d);
            return sb.ToString();
        }
        sb.AppendLine("| device | distil | routed experts | weights | KV cache at its context | budget | own domains | en→it pairs | all | chrF | kd time |");
        sb.AppendLine("|---|---|---|---|---|---|---|---|---|---|---|");
        foreach (var d in deviceRows)
            sb.AppendLine($"| {d.Device} | {d.Distil} | {d.Experts} | {d.WeightBytes / 1e6:F2} MB | {d.KvBytes / 1e6:F2} MB | {d.BudgetBytes / 1e6:F2} MB | "
                + $"{d.OwnDomains:F2} | {d.Translation:F2} | {d.All:F2} | {d.Chrf:F1} | {(d.Distil == "kd" ? d.KdSeconds > 0 && d.KdTrainTokens > 0 ? $"{d.KdSeconds:F0} s" : "— (nothing to distil)" : "")} |");
        sb.AppendLine();
        foreach (var line in DeviceFindings(deviceRows)) sb.AppendLine("- " + line);
        sb.AppendLine();
        sb.AppendLine("kd's wall time and peak memory per device with `behemoth export`, and scaled to an OLMoE-1B-7B-sized model, are in "
            + "[benchmarks.md](benchmarks.md#knowledge-distillation-kd-time-and-memory); its loss curves, train and held-out per step, are written "
            + "beside the package (`PACKAGE.kd-DEVICE.png`).");
        return sb.ToString();
    }

    /// <summary>The expectations of the pruning issue checked against the measurements, in words (true or not).</summary>
    private static IEnumerable<string> Findings(List<Row> rows)
    {
        foreach (var quant in rows.Select(r => r.Quant).Distinct())
        {
            var q = rows.Where(r => r.Quant == quant).ToList();
            double full = q.First(r => r.Keep == 1.0).All;
            string Delta(double v) => $"{100 * (v / full - 1):+0.0;-0.0}%";
            double At(double keep, string c, string d) => q.Single(r => r.Keep == keep && r.Criterion == c && r.Distil == d).All;
            string name = quant.ToString().ToLowerInvariant();
            foreach (var line in KdFindings(q, name)) yield return line;
            if (AllCriteria.Any(c => !q.Any(r => r.Criterion == c.ToString().ToLowerInvariant()))) continue;   // a partial run
            foreach (double keep in Ratios)
            {
                double random = At(keep, "random", "none");
                var calibrated = new[] { "frequency", "reap", "reconstruction" }.Select(c => (c, v: At(keep, c, "none"))).ToArray();
                int better = calibrated.Count(x => x.v < random);
                yield return $"{name}, keep {keep:P0}: random loses {Delta(random)}; calibrated criteria {string.Join(", ", calibrated.Select(x => $"{x.c} {Delta(x.v)}"))} "
                    + $"({better} of 3 beat random).";
            }
            double freq = At(0.5, "frequency", "none");
            foreach (var c in AllCriteria.Select(c => c.ToString().ToLowerInvariant()))
            {
                double none = At(0.5, c, "none"), merge = At(0.5, c, "merge");
                yield return $"{name}, keep 50%, {c}: none {Delta(none)}, merge {Delta(merge)}" + (merge < none ? ": merge helps." : ": merge hurts.");
            }
        }
    }

    /// <summary>Why refit and merge hurt: refit's parts alone against none and the whole, REAP at 50%, int4; merge's numbers.</summary>
    private static IEnumerable<string> RefitStudy(List<Row> rows, List<Row> study)
    {
        var q = rows.Where(r => r.Quant == WeightType.Int4).ToList();
        var full = q.FirstOrDefault(r => r.Keep == 1.0);
        Row? At(string d) => q.SingleOrDefault(r => r.Keep == 0.5 && r.Criterion == "reap" && r.Distil == d);
        var (none, merge, kd) = (At("none"), At("merge"), At("kd"));
        var refit = study.SingleOrDefault(r => r.Distil == "refit");
        var former = study.SingleOrDefault(r => r.Distil == "former-routeranddown");
        var router = study.SingleOrDefault(r => r.Distil == "former-router");
        var down = study.SingleOrDefault(r => r.Distil == "former-down");
        if (full is null || none is null || refit is null || former is null || router is null || down is null) yield break;
        string D(Row r) => $"{100 * (r.All / full.All - 1):+0.0;-0.0}%";
        yield return "## Why refit and merge hurt";
        yield return "";
        yield return "REAP, keep 50%, int4. The former refit (each layer alone, on the full model's activations, towards the full layer's output: "
            + "first the router rows, then the down projections), its two steps alone, and refit without the router step on the pruned model's "
            + "activations (below):";
        yield return "";
        yield return "| distil | all | Δ all | en→it pairs | chrF |";
        yield return "|---|---|---|---|---|";
        foreach (var (label, r) in new[] { ("none", none), ("former refit: router rows only", router), ("former refit: down projections only", down),
                     ("former refit: both", former), ("refit without the router step, pruned activations", refit), ("merge", merge), ("kd", kd) })
            if (r is not null) yield return $"| {label} | {r.All:F2} | {D(r)} | {r.Translation:F1} | {r.Chrf:F1} |";
        yield return "";
        string Verdict(Row r) => r.All < none.All ? "helps" : "hurts";
        yield return $"- The former router refit alone {Verdict(router)} ({D(router)} against {D(none)} without distillation); its down-projection refit "
            + $"alone {Verdict(down)} ({D(down)}); both together {D(former)}. Refit without the router step, on the pruned model's activations: "
            + $"{D(refit)} ({Verdict(refit)}{(kd is not null ? $"; kd {D(kd)}" : "")}).";
        yield return "- " + (refit.All < none.All && (kd is null || refit.All < kd.All)
            ? "Refit, so fixed, beats both none and kd here, yet `behemoth export` offers none, merge and kd only: rerun with refit restored in the CLI."
            : "So `behemoth export` no longer offers refit: " + (refit.All < none.All ? "fixed, it beats none only narrowly and kd does better" : "even fixed it does not beat none")
              + "; kd does what it meant to do, with gradients. The library keeps it (`Distillation.Refit`) as the baseline measured here.");
        yield return "- behemoth-nano's router is Llama 4's: top-1 with a sigmoid gate that scales the expert's *input*. Refit's router step aims each kept "
            + "expert's logit at the logsumexp of its own and its absorbed experts' logits, a target made for softmax routers (probability mass); "
            + "under a sigmoid gate it raises every kept expert's gate, so every token the expert already served reaches it scaled up. "
            + "Both steps fit the full model's inputs, not the pruned model's (the inputs the pruned layers before them produce), and each layer's "
            + "fit is to the full layer's output, so the errors of the layers before are not corrected. *Refit without the router step* fits the "
            + "down projections layer after layer on the pruned model's activations, towards the full model's hidden state (kd's inputs and "
            + "targets), keeping a layer's fit only where it lowers the held-out calibration error.";
        if (merge is not null)
            yield return $"- Merge: {D(merge)} against {D(none)} without distillation (chrF {merge.Chrf:F1} vs {none.Chrf:F1}): averaging the weights of experts "
                + "that specialised differently collapses both, as the REAP paper reports for generative quality; it is kept only as a documented baseline.";
        if (kd is not null)
            yield return $"- kd trains on the pruned model's own activations, towards the full model's hidden state: {D(kd)}.";
    }

    /// <summary>kd against no distillation on the devices' profiles, in words.</summary>
    private static IEnumerable<string> DeviceFindings(List<DeviceRow> rows)
    {
        foreach (var g in rows.GroupBy(r => r.Device))
        {
            var none = g.Single(r => r.Distil == "none");
            var kd = g.Single(r => r.Distil == "kd");
            if (kd.KdTrainTokens == 0)
            {
                yield return $"{g.Key}: keeps every expert ({none.Experts}); kd has nothing to distil and the profile is unchanged (all {none.All:F2} both).";
                continue;
            }
            yield return $"{g.Key}: own domains {none.OwnDomains:F2} → {kd.OwnDomains:F2} with kd ({100 * (kd.OwnDomains / none.OwnDomains - 1):+0.0;-0.0}%), "
                + $"en→it {none.Translation:F2} → {kd.Translation:F2}, chrF {none.Chrf:F1} → {kd.Chrf:F1}, all {none.All:F2} → {kd.All:F2}: "
                + (kd.OwnDomains < none.OwnDomains ? "kd beats pruning alone on the device's domains" : "kd does not beat pruning alone on the device's domains")
                + (kd.Translation <= none.Translation && kd.Chrf >= none.Chrf ? "; en→it perplexity and chrF at least as good." : "; en→it perplexity or chrF worse.");
        }
    }

    /// <summary>kd against no distillation on the keep-ratio profiles (all six domains), in words.</summary>
    private static IEnumerable<string> KdFindings(List<Row> q, string name)
    {
        var full = q.First(r => r.Keep == 1.0);
        foreach (double keep in Ratios)
        {
            var none = q.SingleOrDefault(r => r.Keep == keep && r.Criterion == "reap" && r.Distil == "none");
            var kd = q.SingleOrDefault(r => r.Keep == keep && r.Criterion == "reap" && r.Distil == "kd");
            if (none is null || kd is null) continue;
            int better = kd.Slices.Count(p => p.Value < none.Slices[p.Key]);
            var worst = kd.Slices.Select(p => (p.Key, Delta: p.Value / full.Slices[p.Key] - 1)).OrderByDescending(p => p.Delta).First();
            yield return $"{name}, keep {keep:P0}, reap: none {100 * (none.All / full.All - 1):+0.0;-0.0}%, kd {100 * (kd.All / full.All - 1):+0.0;-0.0}% "
                + $"({(kd.All < none.All ? "kd beats none" : "kd does not beat none")}; better on {better} of {kd.Slices.Count} slices); "
                + $"worst slice with kd {worst.Key} {100 * worst.Delta:+0.0;-0.0}% against unpruned"
                + (keep == 0.5 ? (worst.Delta <= 0.03 ? ": within +3% on every slice." : ": not within +3% on every slice.") : ".");
        }
    }

    /// <summary>The held-out measurements of one profile.</summary>
    private sealed class HeldOut(string evalDir, Behemoth.Runtime.Tokenizer tokenizer, int tokensPerSlice, int pairs)
    {
        private readonly List<(string Slice, string Lang, int[][] Windows)> _slices = LoadSlices(evalDir, tokenizer, tokensPerSlice);
        private readonly List<(string En, string It)> _pairs = LoadPairs(Path.Combine(evalDir, "en-it.jsonl"), pairs);

        public Row Measure(string package, string profile)
        {
            using var session = DecoderSession.Open(package, profile, ExecutionProvider.Cpu);
            int vocab = session.Shape.VocabSize;
            var slices = new Dictionary<string, double>();
            var sliceTokens = new Dictionary<string, long>();
            var byLang = new Dictionary<string, (double Nll, long N)>();
            double allNll = 0;
            long allN = 0;
            foreach (var (slice, lang, windows) in _slices)
            {
                double nll = 0;
                long n = 0;
                foreach (var w in windows)
                {
                    nll += Perplexity.NegativeLogLikelihood(session, w);
                    n += w.Length - 1;
                }
                slices[slice] = Math.Exp(nll / n);
                sliceTokens[slice] = n;
                var l = byLang.GetValueOrDefault(lang);
                byLang[lang] = (l.Nll + nll, l.N + n);
                allNll += nll;
                allN += n;
            }
            var hyps = new List<string>();
            foreach (var (en, _) in _pairs) hyps.Add(Translate(session, en));
            return new Row
            {
                Slices = slices,
                SliceTokens = sliceTokens,
                Languages = byLang.Where(p => p.Key != "en-it").ToDictionary(p => p.Key, p => Math.Exp(p.Value.Nll / p.Value.N)),
                Translation = Math.Exp(byLang["en-it"].Nll / byLang["en-it"].N),
                All = Math.Exp(allNll / allN),
                Chrf = Chrf.Corpus(hyps, _pairs.Select(p => p.It).ToList()),
            };
        }

        private string Translate(DecoderSession session, string en)
        {
            // greedy, to the end of the line: the model's translation format, through the runtime's generation loop
            var prompt = tokenizer.Encode($"English: {en}\nItalian:", addBos: true);
            var options = new GenerationOptions { MaxNewTokens = 2 * prompt.Length + 16, StopStrings = ["\n"] };
            using var generator = new Behemoth.Runtime.Generation.Generator(session, options, tokenizer.EosTokenIds);
            var text = new StringBuilder();
            var pieces = TextGenerator.StreamAsync(generator, tokenizer, prompt, stats: null).GetAsyncEnumerator();
            try
            {
                while (pieces.MoveNextAsync().AsTask().GetAwaiter().GetResult()) text.Append(pieces.Current);
            }
            finally
            {
                pieces.DisposeAsync().AsTask().GetAwaiter().GetResult();
            }
            return text.ToString().Trim();
        }

        private static List<(string, string, int[][])> LoadSlices(string dir, Behemoth.Runtime.Tokenizer tokenizer, int cap)
        {
            var result = new List<(string, string, int[][])>();
            foreach (var file in Directory.GetFiles(dir, "*.jsonl").Order())
            {
                string name = Path.GetFileNameWithoutExtension(file);
                string lang = name == "en-it" ? "en-it" : name.Split('_')[0];
                var windows = new List<int[]>();
                int total = 0;
                foreach (var doc in TextDocuments.Read(file))
                {
                    foreach (var w in Perplexity.Windows(Perplexity.DocumentIds(tokenizer, doc), 256))
                    {
                        if (total >= cap) break;
                        windows.Add(w);
                        total += w.Length - 1;
                    }
                    if (total >= cap) break;
                }
                result.Add((name, lang, windows.ToArray()));
            }
            return result;
        }

        private static List<(string, string)> LoadPairs(string file, int count) =>
            File.ReadLines(file).Take(count).Select(l => JsonNode.Parse(l)!).Select(n => (n["en"]!.GetValue<string>(), n["it"]!.GetValue<string>())).ToList();
    }
}

/// <summary>Corpus-level chrF (Popović 2015), as tools/train/evaluate.py computes it: character n-grams 1–6 without whitespace, β = 2.</summary>
internal static class Chrf
{
    public static double Corpus(IReadOnlyList<string> hyps, IReadOnlyList<string> refs, int order = 6, double beta = 2.0)
    {
        var stats = new double[order, 3];
        for (int i = 0; i < hyps.Count; i++)
            for (int n = 1; n <= order; n++)
            {
                var h = Ngrams(hyps[i], n);
                var r = Ngrams(refs[i], n);
                stats[n - 1, 0] += h.Values.Sum();
                stats[n - 1, 1] += r.Values.Sum();
                stats[n - 1, 2] += h.Sum(p => Math.Min(p.Value, r.GetValueOrDefault(p.Key)));
            }
        var scores = new List<double>();
        for (int n = 0; n < order; n++)
        {
            if (stats[n, 0] == 0 || stats[n, 1] == 0) continue;
            double p = stats[n, 2] / stats[n, 0], r = stats[n, 2] / stats[n, 1];
            scores.Add(p + r == 0 ? 0 : (1 + beta * beta) * p * r / (beta * beta * p + r));
        }
        return scores.Count == 0 ? 0 : 100 * scores.Average();
    }

    private static Dictionary<string, int> Ngrams(string text, int n)
    {
        string s = string.Concat(text.Where(c => !char.IsWhiteSpace(c)));
        var counts = new Dictionary<string, int>();
        for (int i = 0; i + n <= s.Length; i++)
        {
            string g = s.Substring(i, n);
            counts[g] = counts.GetValueOrDefault(g) + 1;
        }
        return counts;
    }
}
