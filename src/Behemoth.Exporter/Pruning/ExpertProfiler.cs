using System.Numerics.Tensors;
using Behemoth.Reference;

namespace Behemoth.Exporter.Pruning;

/// <summary>
/// <c>behemoth profile</c>: runs calibration text through the model and measures, per MoE layer and routed expert,
/// routing frequency, gate-weight mass, REAP (mean over the tokens routed to the expert of gate weight × ‖expert
/// output‖) and the mean output norm, per domain. Layers are processed one at a time and experts one at a time, so
/// memory holds one expert's weights and the calibration activations.
/// </summary>
public static class ExpertProfiler
{
    public static DomainStats ProfileDomain(ReferenceModel model, CalibrationDomain domain, IProgress<string>? progress = null,
        CancellationToken cancellationToken = default)
    {
        var activations = CalibrationActivations.Collect(model, domain.Sequences, cancellationToken);
        var layers = new List<LayerStats>();
        foreach (var (layer, x) in activations.Inputs.OrderBy(p => p.Key))
        {
            cancellationToken.ThrowIfCancellationRequested();
            layers.Add(ProfileLayer(new MoeLayerMath(model, layer), x, activations.Tokens));
            progress?.Report($"{domain.Name}: layer {layer} profiled");
        }
        return new DomainStats { Tokens = activations.Tokens, Sources = domain.Sources, Layers = layers };
    }

    internal static LayerStats ProfileLayer(MoeLayerMath math, float[] x, int tokens)
    {
        int e = math.Experts, h = math.Hidden, inter = math.Moe.ExpertIntermediate;
        var routes = math.Route(math.Logits(x));
        var stats = new LayerStats { Layer = math.Layer, Frequency = new double[e], GateMass = new double[e], Reap = new double[e], OutputNorm = new double[e] };
        foreach (var group in routes.GroupBy(r => r.Expert))
        {
            var chosen = group.ToArray();
            var rows = new float[chosen.Length * h];
            for (int i = 0; i < chosen.Length; i++) x.AsSpan(chosen[i].Token * h, h).CopyTo(rows.AsSpan(i * h, h));
            var gates = chosen.Select(r => r.Weight).ToArray();
            var y = MoeLayerMath.Contribution(math.Weights(group.Key), rows, gates, math.ScalesInput, h, inter);
            double reap = 0, norm = 0, mass = 0;
            for (int i = 0; i < chosen.Length; i++)
            {
                double n = TensorPrimitives.Norm(y.AsSpan(i * h, h));
                // the contribution is gate × output (softmax routers) or the output of the gate-scaled input (Llama 4)
                double output = math.ScalesInput ? n : n / Math.Max(gates[i], 1e-12);
                reap += gates[i] * output;
                norm += output;
                mass += gates[i];
            }
            stats.Frequency[group.Key] = (double)chosen.Length / tokens;
            stats.GateMass[group.Key] = mass / tokens;
            stats.Reap[group.Key] = reap / chosen.Length;
            stats.OutputNorm[group.Key] = norm / chosen.Length;
        }
        return stats;
    }
}
