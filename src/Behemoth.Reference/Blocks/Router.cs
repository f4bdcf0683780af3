using Behemoth.Formats.Config;

namespace Behemoth.Reference.Blocks;

/// <summary>The routers of the supported architectures: which experts a token goes to, with what weight.</summary>
public static class Router
{
    /// <summary>
    /// Appends the top-k experts of one token and their weights, per the architecture's router. With
    /// <paramref name="allowed"/> (one flag per expert), only those experts compete, as in a pruned layer whose router
    /// keeps the rows of its kept experts: softmax is taken over the allowed experts' logits.
    /// </summary>
    public static void Route(MoeSpec m, ReadOnlySpan<float> logits, int token, List<Routing> routes, ReadOnlySpan<bool> allowed = default)
    {
        var candidates = new List<int>(logits.Length);
        for (int e = 0; e < logits.Length; e++)
            if (allowed.IsEmpty || allowed[e]) candidates.Add(e);
        // Descending by logit (ties: lower index first); softmax is monotonic, so the top-k of logits and of probabilities agree.
        var l = logits.ToArray();
        candidates.Sort((a, b) => l[b] != l[a] ? l[b].CompareTo(l[a]) : a.CompareTo(b));
        var top = candidates.Take(m.TopK).ToArray();

        if (m.Router == RouterKind.TopKSigmoid)
        {
            // router_scores = sigmoid(top-k logits); the others are sigmoid(-inf) = 0.
            foreach (int e in top) routes.Add(new Routing(token, e, (float)(1 / (1 + Math.Exp(-l[e])))));
            return;
        }

        // routing_weights = softmax(router_logits, dtype=float); topk; optionally renormalise over the top-k.
        double max = double.NegativeInfinity;
        foreach (int e in candidates) max = Math.Max(max, l[e]);
        double sum = 0;
        foreach (int e in candidates) sum += Math.Exp(l[e] - max);
        double topSum = 0;
        foreach (int e in top) topSum += Math.Exp(l[e] - max) / sum;
        foreach (int e in top)
        {
            double p = Math.Exp(l[e] - max) / sum;
            routes.Add(new Routing(token, e, (float)(m.NormTopKProb ? p / topSum : p)));
        }
    }
}
