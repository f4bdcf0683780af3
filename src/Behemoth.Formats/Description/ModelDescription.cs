using Behemoth.Formats.Config;

namespace Behemoth.Formats.Description;

/// <summary>
/// The tensors of a model and what they add up to: total and active parameters (active = everything except
/// routed experts, plus top-k routed experts per MoE layer; embeddings and lm_head count in both), and the
/// bytes the weights take at each precision. Computed from config.json alone.
/// </summary>
public sealed class ModelDescription
{
    public ModelDescription(string architecture, string modelType, int layers, int moeLayers, int experts, int topK,
        IReadOnlyList<TensorSpec> tensors, bool runnable)
    {
        Architecture = architecture;
        ModelType = modelType;
        Layers = layers;
        MoeLayers = moeLayers;
        ExpertsPerLayer = experts;
        TopK = topK;
        Tensors = tensors;
        IsRunnable = runnable;
    }

    public string Architecture { get; }
    public string ModelType { get; }
    public int Layers { get; }
    public int MoeLayers { get; }
    public int ExpertsPerLayer { get; }
    public int TopK { get; }
    public IReadOnlyList<TensorSpec> Tensors { get; }
    public bool IsRunnable { get; }

    public long TotalParameters => Tensors.Sum(t => t.Elements);

    public long RoutedExpertParameters => Tensors.Where(t => t.Role == TensorRole.RoutedExperts).Sum(t => t.Elements);

    /// <summary>Parameters of one routed expert (of the first MoE layer; all MoE layers of these models are alike).</summary>
    public long ParametersPerExpert
    {
        get
        {
            int first = FirstMoeLayer;
            return PerExpert(Tensors.Where(t => t.Role == TensorRole.RoutedExperts && t.Layer == first));
        }
    }

    public long ActiveParameters
    {
        get
        {
            long active = TotalParameters - RoutedExpertParameters;
            foreach (var layer in Tensors.Where(t => t.Role == TensorRole.RoutedExperts).GroupBy(t => t.Layer))
                active += TopK * PerExpert(layer);
            return active;
        }
    }

    private int FirstMoeLayer => Tensors.Where(t => t.Role == TensorRole.RoutedExperts).Select(t => t.Layer).DefaultIfEmpty(-1).Min();

    // Per-expert tensors count those of expert 0; fused [experts, …] tensors count their size divided by the expert count.
    private static long PerExpert(IEnumerable<TensorSpec> routed) =>
        routed.Where(t => t.ExpertCount > 1 || t.Expert == 0).Sum(t => t.ExpertCount > 1 ? t.Elements / t.ExpertCount : t.Elements);

    /// <summary>Weight bytes of the whole model at a precision.</summary>
    public long Bytes(WeightPrecision precision) => Tensors.Sum(t => precision.BytesFor(t.Elements, t.KeptFullPrecision));

    /// <summary>Weight bytes of one routed expert at a precision.</summary>
    public long BytesPerExpert(WeightPrecision precision) =>
        precision.BytesFor(ParametersPerExpert, keptFullPrecision: false);

    /// <summary>Describes a runnable decoder from its normalised config.</summary>
    public static ModelDescription FromDecoder(DecoderConfig c)
    {
        var n = c.Names;
        var tensors = new List<TensorSpec>();
        int h = c.HiddenSize, qDim = c.NumHeads * c.HeadDim, kvDim = c.NumKvHeads * c.HeadDim;
        tensors.Add(new(n.Embed, [c.VocabSize, h], TensorRole.Embedding));
        foreach (var layer in c.Layers)
        {
            int l = layer.Index;
            string F(string template, int e = -1) => TensorNames.Format(template, l, e);
            tensors.Add(new(F(n.InputNorm), [h], TensorRole.Norm, l));
            tensors.Add(new(F(n.Q), [qDim, h], TensorRole.Attention, l));
            tensors.Add(new(F(n.K), [kvDim, h], TensorRole.Attention, l));
            tensors.Add(new(F(n.V), [kvDim, h], TensorRole.Attention, l));
            tensors.Add(new(F(n.O), [h, qDim], TensorRole.Attention, l));
            if (c.QkvBias)
            {
                tensors.Add(new(F(n.QBias), [qDim], TensorRole.AttentionBias, l));
                tensors.Add(new(F(n.KBias), [kvDim], TensorRole.AttentionBias, l));
                tensors.Add(new(F(n.VBias), [kvDim], TensorRole.AttentionBias, l));
            }
            if (c.OutputBias)
                tensors.Add(new(F(n.OBias), [h], TensorRole.AttentionBias, l));
            switch (layer.QkNorm)
            {
                case QkNormKind.PerHeadRms:
                    tensors.Add(new(F(n.QNorm), [c.HeadDim], TensorRole.Norm, l));
                    tensors.Add(new(F(n.KNorm), [c.HeadDim], TensorRole.Norm, l));
                    break;
                case QkNormKind.ProjectionRms:
                    tensors.Add(new(F(n.QNorm), [qDim], TensorRole.Norm, l));
                    tensors.Add(new(F(n.KNorm), [kvDim], TensorRole.Norm, l));
                    break;
            }
            tensors.Add(new(F(n.PostAttentionNorm), [h], TensorRole.Norm, l));

            if (layer.FeedForward == FeedForwardKind.Dense)
            {
                int d = layer.DenseIntermediate;
                tensors.Add(new(F(n.DenseGate!), [d, h], TensorRole.DenseMlp, l));
                tensors.Add(new(F(n.DenseUp!), [d, h], TensorRole.DenseMlp, l));
                tensors.Add(new(F(n.DenseDown!), [h, d], TensorRole.DenseMlp, l));
                continue;
            }

            var m = c.Moe;
            int i = m.ExpertIntermediate;
            tensors.Add(new(F(n.Router), [m.NumExperts, h], TensorRole.Router, l));
            if (m.Layout == ExpertLayout.Fused)
            {
                tensors.Add(new(F(n.FusedGateUp!), [m.NumExperts, h, 2 * i], TensorRole.RoutedExperts, l, ExpertCount: m.NumExperts));
                tensors.Add(new(F(n.FusedDown!), [m.NumExperts, i, h], TensorRole.RoutedExperts, l, ExpertCount: m.NumExperts));
            }
            else
            {
                for (int e = 0; e < m.NumExperts; e++)
                {
                    tensors.Add(new(F(n.ExpertGate!, e), [i, h], TensorRole.RoutedExperts, l, e, 1));
                    tensors.Add(new(F(n.ExpertUp!, e), [i, h], TensorRole.RoutedExperts, l, e, 1));
                    tensors.Add(new(F(n.ExpertDown!, e), [h, i], TensorRole.RoutedExperts, l, e, 1));
                }
            }
            if (m.SharedIntermediate > 0 && n.SharedGate is not null)
            {
                int s = m.SharedIntermediate;
                tensors.Add(new(F(n.SharedGate), [s, h], TensorRole.SharedExpert, l));
                tensors.Add(new(F(n.SharedUp!), [s, h], TensorRole.SharedExpert, l));
                tensors.Add(new(F(n.SharedDown!), [h, s], TensorRole.SharedExpert, l));
                if (m.SharedExpertSigmoidGate)
                    tensors.Add(new(F(n.SharedExpertGate!), [1, h], TensorRole.Router, l));
            }
        }
        tensors.Add(new(n.FinalNorm, [h], TensorRole.Norm));
        if (!c.TieWordEmbeddings)
            tensors.Add(new(n.LmHead, [c.VocabSize, h], TensorRole.LmHead));
        int moeLayers = c.Layers.Count(x => x.FeedForward == FeedForwardKind.Moe);
        return new ModelDescription(c.Architecture, c.ModelType, c.NumLayers, moeLayers, c.Moe.NumExperts, c.Moe.TopK, tensors, runnable: true);
    }
}
