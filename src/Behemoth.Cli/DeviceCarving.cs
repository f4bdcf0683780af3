using Behemoth.Exporter.Export;
using Behemoth.Exporter.Pruning;
using Behemoth.Formats.Errors;
using Behemoth.Reference;
using Behemoth.Runtime.Text;

namespace Behemoth.Cli;

/// <summary>Shared by plan and export: stats + device files → per-device plans and carved profiles.</summary>
internal sealed class DeviceCarving : IDisposable
{
    private readonly ReferenceModel _model;
    private readonly ExpertStats _stats;
    private readonly string _statsPath;
    private readonly string _modelDir;

    public DeviceCarving(string modelDir, string statsPath)
    {
        _modelDir = modelDir;
        _statsPath = statsPath;
        _model = ReferenceModel.Load(modelDir);
        _stats = ExpertStats.Read(statsPath);
        _stats.EnsureFor(StatsModel.Of(_model), statsPath);
    }

    public static PruningCriterion ParseCriterion(string? value) => value switch
    {
        "frequency" => PruningCriterion.Frequency,
        "reap" or null => PruningCriterion.Reap,
        "reconstruction" => PruningCriterion.Reconstruction,
        "random" => PruningCriterion.Random,
        _ => throw new BehemothException($"--criterion '{value}' is not one of reap, frequency, reconstruction, random"),
    };

    public static Distillation ParseDistillation(string? value) => value switch
    {
        "none" or null => Distillation.None,
        "merge" => Distillation.Merge,
        "refit" => Distillation.Refit,
        _ => throw new BehemothException($"--distil '{value}' is not one of none, merge, refit"),
    };

    public SizeModel Size(QuantKind quant, int blockSize) => new(_model.Config, quant, blockSize);

    /// <summary>The device's plan: scores by the criterion on its domain mix, then as many experts as its memory allows.</summary>
    public PruningPlan Plan(DeviceSpec device, PruningCriterion criterion, int blockSize, int seed)
    {
        var carver = Carver(seed);
        PruningPlan? plan = null;
        var target = Target(device, blockSize, p => plan = p);
        carver.Carve(target, criterion, Distillation.None);
        return plan!;
    }

    public ProfileSpec Carve(DeviceSpec device, PruningCriterion criterion, Distillation distillation, int blockSize, int seed,
        IProgress<string>? progress, CancellationToken ct) =>
        Carver(seed).Carve(Target(device, blockSize, _ => { }), criterion, distillation, progress, ct);

    private CarveTarget Target(DeviceSpec device, int blockSize, Action<PruningPlan> planned) =>
        new(device.Name, string.IsNullOrEmpty(device.Description) ? $"device {device.Name}" : device.Description, device.Domains, scores =>
        {
            var plan = PruningPlanner.ForDevice(device, scores, _model.Config.Moe.TopK, Size(device.Quant, blockSize));
            planned(plan);
            return plan.Kept.ToDictionary(p => p.Key, p => p.Value);
        });

    private ProfileCarver Carver(int seed)
    {
        var tokenizer = new Lazy<Microsoft.ML.Tokenizers.Tokenizer>(() => ModelTokenizer.Load(_modelDir));
        int bos = _model.Config.BosTokenId ?? 1, eos = _model.Config.EosTokenIds.FirstOrDefault(2);
        return new ProfileCarver(_model, _stats, name =>
        {
            var domain = _stats.Domains[name];
            var files = domain.Sources.Select(s => CalibrationSets.Resolve(s, _statsPath)).ToArray();
            return CalibrationSets.Load(name, files, text => tokenizer.Value.EncodeToIds(text), bos, eos, (int)domain.Tokens);
        }) { Seed = seed };
    }

    public void Dispose() => _model.Dispose();
}
