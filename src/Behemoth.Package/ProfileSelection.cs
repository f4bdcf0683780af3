namespace Behemoth.Package;

/// <summary>No profile of a package fits the memory a caller allows; the message lists what each one needs.</summary>
public sealed class ProfileBudgetException(string message) : BehemothException(message);

/// <summary>
/// How much memory a profile needs (its weights, from the manifest, plus the KV cache of one sequence) and which
/// profile to load for a memory budget.
/// </summary>
public static class ProfileSelection
{
    /// <summary>Bytes of the weight files <paramref name="profile"/>'s graph references (older packages: the whole files).</summary>
    public static long WeightBytes(PackageManifest manifest, string profile)
    {
        var info = manifest.Profiles[profile];
        return info.WeightBytes ?? info.Files.Sum(f => manifest.Files[f].Bytes);
    }

    /// <summary>
    /// Float32 keys and values of one sequence of <paramref name="tokens"/> positions: every layer holds all of them,
    /// except sliding and chunked layers (at most one window or chunk).
    /// </summary>
    public static long KvCacheBytes(PackageManifest manifest, int tokens) =>
        KvCacheBytes(manifest.KvCache, manifest.Model.NumLayers, manifest.Model.NumKvHeads, manifest.Model.HeadDim, tokens);

    /// <summary>The same from a layer layout (a layer it does not list keeps every position).</summary>
    public static long KvCacheBytes(IReadOnlyList<LayerKvCache>? layout, int layers, int kvHeads, int headDim, int tokens)
    {
        long perPosition = 2L * kvHeads * headDim * sizeof(float);
        long total = 0;
        for (int l = 0; l < layers; l++)
        {
            var layer = layout?.FirstOrDefault(x => x.Layer == l);
            int held = layer is { Attention: AttentionKind.Chunked or AttentionKind.Sliding, Window: int w } ? Math.Min(tokens, w) : tokens;
            total += held * perPosition;
        }
        return total;
    }

    /// <summary>The profile with the most weights whose weights plus KV cache for <paramref name="tokens"/> fit <paramref name="budgetBytes"/>.</summary>
    public static string Largest(PackageManifest manifest, string packageDirectory, long budgetBytes, int tokens)
    {
        long kv = KvCacheBytes(manifest, tokens);
        var fitting = manifest.Profiles.Keys.Select(p => (Name: p, Weights: WeightBytes(manifest, p)))
            .Where(p => p.Weights + kv <= budgetBytes).OrderByDescending(p => p.Weights).ToArray();
        if (fitting.Length > 0) return fitting[0].Name;
        var sizes = manifest.Profiles.Keys.Order().Select(p =>
            $"{p} {Megabytes(WeightBytes(manifest, p) + kv)} ({Megabytes(WeightBytes(manifest, p))} weights + {Megabytes(kv)} KV cache)");
        throw new ProfileBudgetException($"{packageDirectory}: no profile fits a memory budget of {Megabytes(budgetBytes)} with a "
            + $"{tokens}-token context: {string.Join("; ", sizes)}");
    }

    private static string Megabytes(long bytes) => $"{bytes / 1e6:F1} MB";
}
