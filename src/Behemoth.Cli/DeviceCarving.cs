using Behemoth.Exporter.Export;
using Behemoth.Exporter.Pruning;
using Behemoth.Formats.Errors;
using Behemoth.Reference;
using Behemoth.Package;

namespace Behemoth.Cli;

/// <summary>Shared by plan and export: stats + device files → per-device plans and carved profiles.</summary>
internal sealed class DeviceCarving : IDisposable
{
    private readonly ReferenceModel _model;
    private readonly ExpertStats _stats;
    private readonly string _statsPath;
    private readonly string _modelDir;
    private readonly KdOptions _kd;

    public DeviceCarving(string modelDir, string statsPath, KdOptions? kd = null)
    {
        _kd = kd ?? new KdOptions();
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
        "kd" => Distillation.Kd,
        _ => throw new BehemothException($"--distil '{value}' is not one of none, merge, kd"),
    };

    public SizeModel Size(ExportOptions options) => new(_model.Config, options);

    /// <summary>The device's plan: scores by the criterion on its domain mix, then as many experts as its memory allows.</summary>
    public PruningPlan Plan(DeviceSpec device, PruningCriterion criterion, ExportOptions options, int seed)
    {
        PruningPlan? plan = null;
        Carver(seed).Carve(CarveTarget.ForDevice(device, _model.Config, options, p => plan = p), criterion, Distillation.None);
        return plan!;
    }

    /// <summary>The device's profile for an export with <paramref name="options"/> (sized as that export writes it).</summary>
    public ProfileSpec Carve(DeviceSpec device, PruningCriterion criterion, Distillation distillation, ExportOptions options, int seed,
        IProgress<string>? progress, CancellationToken ct) =>
        Carver(seed).Carve(CarveTarget.ForDevice(device, _model.Config, options), criterion, distillation, progress, ct);

    /// <summary>One carver per seed, so devices with common calibration domains share their activations.</summary>
    private ProfileCarver Carver(int seed)
    {
        if (_carvers.TryGetValue(seed, out var carver)) return carver;
        return _carvers[seed] = ProfileCarver.FromStats(_model, _stats, _statsPath, _modelDir, seed, _kd);
    }

    private readonly Dictionary<int, ProfileCarver> _carvers = new();

    /// <summary>What kd did, per profile, over every carver.</summary>
    public IEnumerable<KdReport> KdReports => _carvers.Values.SelectMany(c => c.KdReports.Values);

    public void Dispose() => _model.Dispose();
}
