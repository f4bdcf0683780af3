using Behemoth.Exporter.Export;
using Behemoth.Formats.Errors;
using Behemoth.Reference;
using Behemoth.Text;
using Behemoth.Package;

namespace Behemoth.Exporter.Pruning;

/// <summary>One profile to carve: its name, the calibration domains it is for, and how many experts it keeps from scores.</summary>
public sealed record CarveTarget(string Name, string Description, IReadOnlyDictionary<string, double> Domains,
    Func<IReadOnlyDictionary<int, double[]>, Dictionary<int, int[]>> Choose)
{
    /// <summary>A device's profile: as many experts as its memory allows (<paramref name="planned"/> sees the plan).</summary>
    public static CarveTarget ForDevice(DeviceSpec device, Formats.Config.DecoderConfig config, int blockSize = 32, Action<PruningPlan>? planned = null) =>
        ForDevice(device, config, new ExportOptions { BlockSize = blockSize }, planned);

    /// <summary>
    /// A device's profile for an export with <paramref name="options"/>: sized at the device's precision with the
    /// export's block size, MaxContext and layers, as the exporter will write it (<see cref="SizeModel"/>).
    /// </summary>
    public static CarveTarget ForDevice(DeviceSpec device, Formats.Config.DecoderConfig config, ExportOptions options, Action<PruningPlan>? planned = null) =>
        new(device.Name, string.IsNullOrEmpty(device.Description) ? $"device {device.Name}" : device.Description, device.Domains, scores =>
        {
            var plan = PruningPlanner.ForDevice(device, scores, config.Moe.TopK, new SizeModel(config, options with { Quant = device.Quant, Profiles = [] }));
            planned?.Invoke(plan);
            return plan.Kept.ToDictionary(p => p.Key, p => p.Value);
        });
}

/// <summary>
/// From profiling statistics to device profiles: ranks experts by a criterion on each target's domain mix, keeps what
/// the target allows, and distils the dropped experts into the kept ones when asked. The result goes to
/// <see cref="ExportOptions.Profiles"/>.
/// </summary>
public sealed class ProfileCarver(ReferenceModel model, ExpertStats stats, Func<string, CalibrationDomain> calibration)
{
    /// <summary>Tokens per layer the reconstruction criterion and refit use at most (spread over the target's domains).</summary>
    public int MaxTokens { get; init; } = 4096;

    public int Seed { get; init; } = 1234;

    /// <summary>Settings of <see cref="Distillation.Kd"/> (its seed is <see cref="Seed"/>).</summary>
    public KdOptions Kd { get; init; } = new();

    /// <summary>
    /// kd's calibration text: a domain's documents up to a token count (kd may read more of the domain's files than the
    /// profiling statistics did); by default the same text as the criteria.
    /// </summary>
    public Func<string, int, CalibrationDomain>? KdCalibration { get; init; }

    /// <summary>
    /// Null (the default): refit fits the kept experts' down projections on the pruned model's own activations towards
    /// the full model's hidden states (<see cref="KnowledgeDistiller.RefitDown"/>). Set: the former refit, fitting the
    /// given parts on the full model's activations towards the full layer's output, one layer alone (for measuring why
    /// it hurt).
    /// </summary>
    public RefitParts? RefitOnFullModelInputs { get; set; }

    /// <summary>What kd did for each profile carved with it, by profile name.</summary>
    public IReadOnlyDictionary<string, KdReport> KdReports => _kdReports;

    private readonly Dictionary<string, KdReport> _kdReports = new();

    private readonly Dictionary<string, CalibrationActivations> _activations = new();
    private readonly Dictionary<(int Layer, string Mix), ReconstructionInputs> _inputs = new();

    /// <summary>
    /// A carver whose calibration text is what <paramref name="statsPath"/> records for each domain, re-read and
    /// tokenized with the tokenizer of <paramref name="modelDirectory"/> (<see cref="ModelTokenizer.Open(string)"/>, loaded the
    /// first time the reconstruction criterion or refit needs activations) between the model's BOS and EOS
    /// (<see cref="CalibrationSets.DocumentBounds"/>).
    /// </summary>
    public static ProfileCarver FromStats(ReferenceModel model, ExpertStats stats, string statsPath, string modelDirectory, int seed = 1234, KdOptions? kd = null)
    {
        var text = new Lazy<(LoadedTokenizer Tokenizer, int Bos, int Eos)>(() =>
        {
            var tokenizer = ModelTokenizer.Open(modelDirectory);
            var (bos, eos) = CalibrationSets.DocumentBounds(model.Config, tokenizer, modelDirectory);
            return (tokenizer, bos, eos);
        });
        CalibrationDomain Load(string name, long tokens)
        {
            var domain = stats.Domains[name];
            var files = domain.Sources.Select(s => CalibrationSets.Resolve(s, statsPath)).ToArray();
            var (tokenizer, bos, eos) = text.Value;
            return CalibrationSets.Load(name, files, tokenizer, bos, eos, (int)Math.Min(int.MaxValue, tokens));
        }
        return new ProfileCarver(model, stats, name => Load(name, stats.Domains[name].Tokens))
        {
            Seed = seed,
            Kd = kd ?? new KdOptions(),
            // kd reads as much of each domain's files as it asks for, not only what the statistics profiled
            KdCalibration = (name, tokens) => Load(name, Math.Max(tokens, stats.Domains[name].Tokens)),
        };
    }

    public ProfileSpec Carve(CarveTarget target, PruningCriterion criterion, Distillation distillation, IProgress<string>? progress = null,
        CancellationToken cancellationToken = default)
    {
        var mixed = stats.Mix(target.Domains, $"profile '{target.Name}'");
        bool needActivations = criterion == PruningCriterion.Reconstruction || distillation == Distillation.Refit;
        // built once per layer and domain mix: every target with the same mix (keep ratios, devices) reuses them
        string mix = string.Join(",", target.Domains.OrderBy(d => d.Key, StringComparer.Ordinal).Select(d => $"{d.Key}={d.Value:R}"));
        ReconstructionInputs Inputs(int layer) =>
            _inputs.TryGetValue((layer, mix), out var r) ? r : _inputs[(layer, mix)] = BuildInputs(layer, target.Domains, cancellationToken);
        var scores = Criteria.Scores(criterion, mixed, Seed, needActivations ? Inputs : null);
        var kept = target.Choose(scores);
        progress?.Report($"{target.Name}: {criterion.ToString().ToLowerInvariant()} keeps {kept.Values.Sum(k => k.Length)} of "
            + $"{stats.Model.Experts * kept.Count} experts");

        ProfileWeights? weights = null;
        if (distillation == Distillation.Kd || (distillation == Distillation.Refit && RefitOnFullModelInputs is null))
        {
            bool refit = distillation == Distillation.Refit;
            if (kept.All(p => p.Value.Length == stats.Model.Experts))
                progress?.Report($"{target.Name}: keeps every expert, nothing to distil; the profile is exported unchanged");
            else
            {
                var options = Kd with { Seed = Seed };
                var docs = KnowledgeDistiller.Sample(target.Domains, KdCalibration is { } more ? name => more(name, options.Tokens) : calibration, options, target.Name);
                var (w, report) = KnowledgeDistiller.Distil(model, target.Name, kept, docs, options, progress, cancellationToken, refit);
                weights = w;
                if (!refit) _kdReports[target.Name] = report;
                progress?.Report($"{target.Name}: {(refit ? "refit" : "kd trained")} {w.Experts.Count} experts and {w.Routers.Count} routers on {report.TrainTokens} tokens "
                    + $"({report.HeldOutTokens} held out) in {report.Elapsed.TotalSeconds:F0} s, peak working set {report.PeakWorkingSetBytes / 1e6:F0} MB");
            }
        }
        else if (distillation != Distillation.None)
        {
            var experts = new Dictionary<(int, int), ExpertMatrices>();
            var routers = new Dictionary<int, float[]>();
            foreach (var (layer, ids) in kept)
            {
                cancellationToken.ThrowIfCancellationRequested();
                if (ids.Length == stats.Model.Experts) continue;
                var math = new MoeLayerMath(model, layer);
                if (distillation == Distillation.Merge)
                    foreach (var (key, value) in Distiller.Merge(math, ids, mixed[layer].Frequency)) experts[key] = value;
                else
                {
                    var (refitted, router) = Distiller.Refit(math, ids, Inputs(layer), RefitOnFullModelInputs!.Value);
                    foreach (var (key, value) in refitted) experts[key] = value;
                    routers[layer] = router;
                }
            }
            weights = new ProfileWeights(experts, routers);
            progress?.Report($"{target.Name}: {distillation.ToString().ToLowerInvariant()} rewrote {experts.Count} experts and {routers.Count} routers");
        }
        return new ProfileSpec(target.Name, target.Description, kept) { Weights = weights };
    }

    /// <summary>A layer's calibration inputs over the target's domains, each domain weighted by its share, at most MaxTokens tokens.</summary>
    private ReconstructionInputs BuildInputs(int layer, IReadOnlyDictionary<string, double> mix, CancellationToken ct)
    {
        int h = model.Config.HiddenSize;
        double total = mix.Values.Sum();
        var rows = new List<float>();
        var tokenWeights = new List<double>();
        foreach (var (name, share) in mix)
        {
            if (!_activations.TryGetValue(name, out var act))
                _activations[name] = act = CalibrationActivations.Collect(model, calibration(name).Sequences, ct);
            int take = Math.Max(1, (int)(MaxTokens * share / total));
            var x = act.Inputs[layer];
            // evenly spaced tokens, so every part of the domain's text is represented
            var picked = Enumerable.Range(0, Math.Min(take, act.Tokens)).Select(i => (int)((long)i * act.Tokens / Math.Min(take, act.Tokens))).ToArray();
            foreach (int t in picked)
            {
                rows.AddRange(x.AsSpan(t * h, h).ToArray());
                tokenWeights.Add(share / total / picked.Length);
            }
        }
        if (tokenWeights.Count == 0) throw new BehemothException("no calibration tokens for the reconstruction criterion or refit");
        return new ReconstructionInputs(new MoeLayerMath(model, layer), rows.ToArray(), tokenWeights.ToArray());
    }
}
