using System.Text.RegularExpressions;
using Behemoth.Formats.Errors;
using Behemoth.Formats.Config;
using Behemoth.Package;

namespace Behemoth.Exporter.Export;

/// <summary>
/// Where each routed expert is stored and which experts each profile's graph uses, per MoE layer.
/// Fused form: a layer's experts are one stack [experts, …] (one tensor, as the MoE kernel wants), so a profile can
/// only share the stack's bytes by using a prefix of it. The stack is ordered so that every profile's experts are a
/// prefix, which works when the profiles' expert sets are nested (each contains the smaller ones), as profiles cut
/// from one ranking with different budgets are. Decomposed form: every expert is its own tensors, so any sets share.
/// </summary>
internal sealed partial class ExpertPlan
{
    public const string FullProfile = "full";
    private readonly Dictionary<int, int[]> _storage = new();
    private readonly Dictionary<(string Profile, int Layer), int[]> _kept = new();

    /// <summary>The profiles in the order their graphs are written: full first.</summary>
    public IReadOnlyList<ProfileSpec> Profiles { get; }

    private ExpertPlan(IReadOnlyList<ProfileSpec> profiles) => Profiles = profiles;

    /// <summary>Where <paramref name="profile"/>'s experts start in <paramref name="layer"/>'s stack (they are contiguous).</summary>
    public int Start(string profile, int layer) => _start.GetValueOrDefault((profile, layer));

    private readonly Dictionary<(string, int), int> _start = new();

    /// <summary>Whether <paramref name="profile"/> has replaced experts in <paramref name="layer"/>: then (fused form) it gets its own stack.</summary>
    public bool OwnStack(string profile, int layer) => _own.Contains((profile, layer));

    private readonly HashSet<(string, int)> _own = [];

    public ProfileSpec Profile(string name) => Profiles.Single(p => p.Name == name);

    /// <summary>Per MoE layer, the original expert ids in the order they are stored.</summary>
    public int[] StorageOrder(int layer) => _storage[layer];

    /// <summary>The original ids of the experts <paramref name="profile"/> keeps in <paramref name="layer"/>, in graph order
    /// (the router's output index i is expert Kept[i]; in the fused form a prefix of <see cref="StorageOrder"/>).</summary>
    public int[] Kept(string profile, int layer) => _kept[(profile, layer)];

    public static ExpertPlan Create(DecoderConfig c, IReadOnlyList<ProfileSpec> extra, bool fused)
    {
        var moeLayers = c.Layers.Where(l => l.FeedForward == FeedForwardKind.Moe).Select(l => l.Index).ToArray();
        int experts = c.Moe.NumExperts;
        var full = new ProfileSpec(FullProfile, "every expert of the checkpoint",
            moeLayers.ToDictionary(l => l, _ => Enumerable.Range(0, experts).ToArray()));
        var profiles = new List<ProfileSpec> { full };
        foreach (var p in extra)
        {
            if (!ProfileName().IsMatch(p.Name))
                throw new BehemothException($"profile name '{p.Name}' is not valid: use lower-case letters, digits, '-' and '_' (it names the profile's graph file)");
            if (profiles.Any(q => q.Name == p.Name))
                throw new BehemothException($"profile '{p.Name}' is given twice{(p.Name == FullProfile ? " ('full', every expert, is always written)" : "")}");
            foreach (var (layer, ids) in p.Experts)
            {
                if (!moeLayers.Contains(layer))
                    throw new BehemothException($"profile '{p.Name}': layer {layer} is not an MoE layer of this model (MoE layers: {string.Join(", ", moeLayers)})");
                if (ids.Length < c.Moe.TopK)
                    throw new BehemothException($"profile '{p.Name}', layer {layer}: keeps {ids.Length} experts, fewer than the {c.Moe.TopK} each token is routed to");
                if (ids.Distinct().Count() != ids.Length || ids.Any(e => e < 0 || e >= experts))
                    throw new BehemothException($"profile '{p.Name}', layer {layer}: expert ids must be distinct and in [0, {experts}); got {string.Join(", ", ids)}");
            }
            profiles.Add(p with { Experts = moeLayers.ToDictionary(l => l, l => p.Experts.TryGetValue(l, out var ids) ? ids : Enumerable.Range(0, experts).ToArray()) });
        }

        var plan = new ExpertPlan(profiles);
        foreach (int layer in moeLayers)
        {
            if (!fused)
            {
                plan._storage[layer] = Enumerable.Range(0, experts).ToArray();
                foreach (var p in profiles) plan._kept[(p.Name, layer)] = p.Experts[layer].Order().ToArray();
                continue;
            }
            // Smallest set first; each must contain the one before. The stack lists the smallest set's experts, then
            // what the next set adds, and so on, so every profile's experts are a prefix.
            // A profile with its own (distilled) experts in this layer gets its own stack, in ascending id order.
            foreach (var p in profiles.Where(p => p.Weights?.Experts.Keys.Any(k => k.Layer == layer) == true))
            {
                plan._own.Add((p.Name, layer));
                plan._kept[(p.Name, layer)] = p.Experts[layer].Order().ToArray();
            }
            var sharing = profiles.Where(p => !plan._own.Contains((p.Name, layer))).ToArray();
            int[] order = ContiguousOrder(layer, sharing, experts);
            plan._storage[layer] = order;
            foreach (var p in sharing)
            {
                var set = p.Experts[layer].ToHashSet();
                int start = Array.FindIndex(order, set.Contains);
                plan._start[(p.Name, layer)] = start;
                plan._kept[(p.Name, layer)] = order.Skip(start).Take(set.Count).ToArray();
            }
        }
        foreach (var p in profiles.Where(p => p.Weights is not null))
            foreach (var (layer, rows) in p.Weights!.Routers)
                if (!moeLayers.Contains(layer) || rows.Length != p.Experts[layer].Length * c.HiddenSize)
                    throw new BehemothException($"profile '{p.Name}', layer {layer}: the refitted router has {rows.Length} weights, expected "
                        + $"{(moeLayers.Contains(layer) ? p.Experts[layer].Length * c.HiddenSize : 0)} (kept experts × hidden size)");
        return plan;
    }

    /// <summary>
    /// An order of the layer's experts in which every profile's set is one contiguous run, so each profile's graph
    /// references a slice of the one stack. Nested sets (profiles cut from one ranking) are prefixes, smallest first.
    /// Otherwise experts are grouped by which profiles keep them, and the groups' orders are searched for one that
    /// keeps every profile contiguous (always possible for two sets besides the full one).
    /// </summary>
    private static int[] ContiguousOrder(int layer, IReadOnlyList<ProfileSpec> profiles, int experts)
    {
        var sets = profiles.Select(p => p.Experts[layer].ToHashSet()).ToArray();
        var bySize = Enumerable.Range(0, sets.Length).OrderBy(i => sets[i].Count).ToArray();
        if (bySize.Zip(bySize.Skip(1)).All(pair => sets[pair.First].IsSubsetOf(sets[pair.Second])))
        {
            var nested = new List<int>();
            foreach (int i in bySize) nested.AddRange(sets[i].Where(e => !nested.Contains(e)).Order());
            nested.AddRange(Enumerable.Range(0, experts).Where(e => !nested.Contains(e)));
            return nested.ToArray();
        }
        // groups of experts kept by the same profiles
        var groups = Enumerable.Range(0, experts).GroupBy(e => string.Concat(sets.Select(s => s.Contains(e) ? '1' : '0')))
            .Select(g => g.Order().ToArray()).ToArray();
        if (groups.Length <= 8)
            foreach (var permutation in Permutations(Enumerable.Range(0, groups.Length).ToArray()))
            {
                var order = permutation.SelectMany(g => groups[g]).ToArray();
                if (sets.All(set => IsContiguous(order, set))) return order;
            }
        throw new BehemothException($"layer {layer}: the profiles {string.Join(", ", profiles.Select(p => $"'{p.Name}'"))} keep expert sets that no "
            + "order of one stack makes contiguous for all of them. The fused MoE form stores a layer's experts as one stack and a profile "
            + "shares a slice of it; export with --moe decomposed to share any sets");
    }

    private static bool IsContiguous(int[] order, HashSet<int> set)
    {
        int first = Array.FindIndex(order, set.Contains);
        return first >= 0 && order.Skip(first).Take(set.Count).All(set.Contains);
    }

    private static IEnumerable<int[]> Permutations(int[] items)
    {
        if (items.Length <= 1)
        {
            yield return items;
            yield break;
        }
        for (int i = 0; i < items.Length; i++)
            foreach (var rest in Permutations([.. items[..i], .. items[(i + 1)..]]))
                yield return [items[i], .. rest];
    }

    /// <summary>A short stable name for a list of expert ids (names a profile's router rows).</summary>
    public static string Key(int[] experts) =>
        Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.ASCII.GetBytes(string.Join(",", experts))))[..12];

    [GeneratedRegex("^[a-z0-9][a-z0-9_-]*$")]
    private static partial Regex ProfileName();
}
