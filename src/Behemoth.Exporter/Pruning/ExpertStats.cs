using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Serialization;
using Behemoth.Formats.Config;
using Behemoth.Formats.Errors;
using Behemoth.Package;

namespace Behemoth.Exporter.Pruning;

/// <summary>
/// stats.json: per calibration domain, per MoE layer and routed expert, how the router used the expert on that
/// domain's text. Written by <c>behemoth profile</c>, read by <c>plan</c> and <c>export --stats</c>.
/// </summary>
public sealed record ExpertStats
{
    public const string FormatName = "behemoth-expert-stats";

    [JsonPropertyName("format")] public string Format { get; init; } = FormatName;
    [JsonPropertyName("format_version")] public int FormatVersion { get; init; } = 1;
    [JsonPropertyName("model")] public required StatsModel Model { get; init; }
    [JsonPropertyName("domains")] public required Dictionary<string, DomainStats> Domains { get; init; }

    public static readonly JsonSerializerOptions Json = new() { WriteIndented = true };

    public static ExpertStats Read(string path)
    {
        if (!File.Exists(path)) throw new BehemothException($"{path}: no such stats file");
        ExpertStats? stats;
        try
        {
            stats = JsonSerializer.Deserialize<ExpertStats>(PackageFile.ReadInput(path), Json);
        }
        catch (JsonException e)
        {
            throw new BehemothException($"{path}: not a stats file written by behemoth profile ({e.Message})");
        }
        if (stats is null || stats.Format != FormatName || stats.Model is null || stats.Domains is null)
            throw new BehemothException($"{path}: not a stats file written by behemoth profile (format '{stats?.Format}')");
        if (stats.FormatVersion != 1)
            throw new BehemothException($"{path}: stats format version {stats.FormatVersion} is not supported (this build reads 1)");
        return stats;
    }

    /// <summary>Writes through a temporary file, so a failed write leaves any older file intact.</summary>
    public void Write(string path)
    {
        string tmp = path + ".tmp-" + Guid.NewGuid().ToString("N")[..8];
        File.WriteAllText(tmp, JsonSerializer.Serialize(this, Json));
        File.Move(tmp, path, overwrite: true);
    }

    /// <summary>Refuses stats profiled on another model (other shape or other router weights), naming what differs.</summary>
    public void EnsureFor(StatsModel model, string statsPath)
    {
        if (Model.Fingerprint != model.Fingerprint)
            throw new BehemothException($"{statsPath}: these stats were profiled on another model ({Model.Architecture}, {Model.Experts} experts × "
                + $"{Model.MoeLayers.Count} MoE layers, fingerprint {Model.Fingerprint[..12]}) than {model.Architecture}, {model.Experts} experts × "
                + $"{model.MoeLayers.Count} MoE layers, fingerprint {model.Fingerprint[..12]}; run behemoth profile on this model");
    }

    /// <summary>Per MoE layer, the domains' statistics mixed with <paramref name="mix"/> weights (normalised to sum 1).</summary>
    public IReadOnlyDictionary<int, LayerStats> Mix(IReadOnlyDictionary<string, double> mix, string what)
    {
        foreach (var name in mix.Keys)
            if (!Domains.ContainsKey(name))
                throw new BehemothException($"{what}: domain '{name}' is not in the stats (profiled domains: {string.Join(", ", Domains.Keys.Order())})");
        double total = mix.Values.Sum();
        if (!(total > 0)) throw new BehemothException($"{what}: the domain weights must be positive");
        var result = new Dictionary<int, LayerStats>();
        foreach (int layer in Model.MoeLayers)
        {
            int e = Model.Experts;
            var mixed = new LayerStats { Layer = layer, Frequency = new double[e], GateMass = new double[e], Reap = new double[e], OutputNorm = new double[e] };
            foreach (var (name, weight) in mix)
            {
                var l = Domains[name].Layers.Single(x => x.Layer == layer);
                double w = weight / total;
                for (int i = 0; i < e; i++)
                {
                    mixed.Frequency[i] += w * l.Frequency[i];
                    mixed.GateMass[i] += w * l.GateMass[i];
                    mixed.Reap[i] += w * l.Reap[i];
                    mixed.OutputNorm[i] += w * l.OutputNorm[i];
                }
            }
            result[layer] = mixed;
        }
        return result;
    }
}

public sealed record StatsModel
{
    [JsonPropertyName("architecture")] public required string Architecture { get; init; }
    [JsonPropertyName("experts")] public required int Experts { get; init; }
    [JsonPropertyName("top_k")] public required int TopK { get; init; }
    [JsonPropertyName("moe_layers")] public required IReadOnlyList<int> MoeLayers { get; init; }
    /// <summary>SHA-256 over the shape and the first MoE layer's router weights: stats from another model never match.</summary>
    [JsonPropertyName("fingerprint")] public required string Fingerprint { get; init; }

    public static StatsModel Of(Reference.ReferenceModel model)
    {
        var c = model.Config;
        var moe = c.Layers.Where(l => l.FeedForward == FeedForwardKind.Moe).Select(l => l.Index).ToArray();
        if (moe.Length == 0) throw new BehemothException($"{c.ConfigPath}: the model has no MoE layers to profile");
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        sha.AppendData(System.Text.Encoding.UTF8.GetBytes($"{c.Architecture}|{c.HiddenSize}|{c.NumLayers}|{c.Moe.NumExperts}|{c.Moe.TopK}"));
        sha.AppendData(System.Runtime.InteropServices.MemoryMarshal.AsBytes(model.RouterWeights(moe[0]).AsSpan()));
        return new StatsModel
        {
            Architecture = c.Architecture, Experts = c.Moe.NumExperts, TopK = c.Moe.TopK, MoeLayers = moe,
            Fingerprint = Convert.ToHexStringLower(sha.GetHashAndReset()),
        };
    }
}

public sealed record DomainStats
{
    [JsonPropertyName("tokens")] public required long Tokens { get; init; }
    [JsonPropertyName("sources")] public required IReadOnlyList<string> Sources { get; init; }
    [JsonPropertyName("layers")] public required IReadOnlyList<LayerStats> Layers { get; init; }
}

/// <summary>One MoE layer on one domain: per routed expert.</summary>
public sealed record LayerStats
{
    [JsonPropertyName("layer")] public required int Layer { get; init; }
    /// <summary>Share of tokens routed to the expert (sums to top_k over the experts).</summary>
    [JsonPropertyName("frequency")] public required double[] Frequency { get; init; }
    /// <summary>Mean over all tokens of the expert's gate weight (0 where not routed).</summary>
    [JsonPropertyName("gate_mass")] public required double[] GateMass { get; init; }
    /// <summary>REAP: mean over the tokens routed to the expert of gate weight × ‖expert output‖.</summary>
    [JsonPropertyName("reap")] public required double[] Reap { get; init; }
    /// <summary>Mean ‖expert output‖ over the tokens routed to it.</summary>
    [JsonPropertyName("output_norm")] public required double[] OutputNorm { get; init; }
}
