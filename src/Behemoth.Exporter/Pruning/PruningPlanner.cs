using Behemoth.Formats.Errors;
using Behemoth.Package;

namespace Behemoth.Exporter.Pruning;

/// <summary>A device's plan: the routed experts each MoE layer keeps, and what the profile will take.</summary>
public sealed record PruningPlan(string Name, IReadOnlyDictionary<int, int[]> Kept, long WeightBytes, long KvCacheBytes, long BudgetBytes)
{
    public int ExpertsKept => Kept.Values.Sum(k => k.Length);
}

/// <summary>
/// Chooses the experts of each MoE layer under a byte budget: every layer first keeps its top-k best experts (a token
/// must have k experts to go to), then the remaining budget goes to the best-scoring experts of any layer, so
/// layers whose experts matter more keep more of them. Larger budgets keep supersets of smaller ones.
/// </summary>
public static class PruningPlanner
{
    /// <summary>The experts to keep, <paramref name="keep"/> in all, from scores normalised within each layer.</summary>
    public static Dictionary<int, int[]> Allocate(IReadOnlyDictionary<int, double[]> scores, int topK, int keep)
    {
        int layers = scores.Count;
        int experts = scores.Values.First().Length;
        keep = Math.Clamp(keep, topK * layers, experts * layers);
        var kept = scores.ToDictionary(p => p.Key, p => Ranked(p.Value).Take(topK).ToList());
        var rest = scores.SelectMany(p => Ranked(p.Value).Skip(topK).Select(e => (Layer: p.Key, Expert: e, Score: p.Value[e])))
            .OrderByDescending(x => x.Score).ThenBy(x => x.Layer).ThenBy(x => x.Expert);
        foreach (var x in rest.Take(keep - topK * layers)) kept[x.Layer].Add(x.Expert);
        return kept.ToDictionary(p => p.Key, p => p.Value.Order().ToArray());
    }

    /// <summary>Keeps <paramref name="ratio"/> of every layer's experts (at least top-k), by score.</summary>
    public static Dictionary<int, int[]> KeepRatio(IReadOnlyDictionary<int, double[]> scores, int topK, double ratio) =>
        scores.ToDictionary(p => p.Key, p =>
            Ranked(p.Value).Take(Math.Max(topK, (int)Math.Round(ratio * p.Value.Length))).Order().ToArray());

    /// <summary>The plan for a device: as many experts as its memory allows after the non-expert weights and the KV cache.</summary>
    public static PruningPlan ForDevice(DeviceSpec device, IReadOnlyDictionary<int, double[]> scores, int topK, SizeModel size)
    {
        long kv = size.KvCache(device.ContextTokens);
        long available = device.MemoryBytes - kv - size.NonExpert;
        int layers = scores.Count, experts = scores.Values.First().Length;
        long smallest = size.NonExpert + kv + (long)topK * layers * size.PerExpert;
        if (available < (long)topK * layers * size.PerExpert)
            throw new BehemothException($"device '{device.Name}': {device.MemoryBytes:N0} bytes is below the smallest possible model at {device.Quantization}: "
                + $"{smallest:N0} bytes ({size.NonExpert:N0} for the weights every profile needs, {kv:N0} for the KV cache of {device.ContextTokens} tokens, "
                + $"{(long)topK * layers * size.PerExpert:N0} for {topK} expert(s) in each of {layers} MoE layers)");
        int keep = (int)Math.Min((long)experts * layers, available / size.PerExpert);
        var kept = Allocate(scores, topK, keep);
        long bytes = size.NonExpert + kept.Values.Sum(k => k.Length) * size.PerExpert;
        return new PruningPlan(device.Name, kept, bytes, kv, device.MemoryBytes);
    }

    private static IEnumerable<int> Ranked(double[] scores) =>
        Enumerable.Range(0, scores.Length).OrderByDescending(e => scores[e]).ThenBy(e => e);
}
