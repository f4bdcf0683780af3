using System.Numerics.Tensors;
using Behemoth.Formats.Config;
using Behemoth.Package;

namespace Behemoth.Reference.Blocks;

/// <summary>Causal grouped-query attention over a full sequence, with the layer's sliding-window or chunk mask.</summary>
internal static class Attention
{
    /// <summary>Whether query position <paramref name="q"/> may attend to key position <paramref name="k"/>.</summary>
    public static bool Visible(LayerSpec layer, int q, int k) => k <= q && layer.Attention switch
    {
        AttentionKind.Sliding => q - k < layer.Window,         // the last `window` positions, the query's own included
        AttentionKind.Chunked => q / layer.Window == k / layer.Window, // same chunk of `window` positions
        _ => true,
    };

    /// <summary>
    /// output [T, heads·d] = softmax(q·kᵀ/√d + mask)·v per head; query head h reads key/value head h / (heads / kvHeads).
    /// </summary>
    public static void Compute(LayerSpec layer, ReadOnlySpan<float> q, ReadOnlySpan<float> k, ReadOnlySpan<float> v, Span<float> output,
        int seq, int heads, int kvHeads, int headDim)
    {
        int group = heads / kvHeads;
        float scale = (float)(1.0 / Math.Sqrt(headDim));
        var scores = new double[seq];
        var acc = new float[headDim];
        for (int h = 0; h < heads; h++)
        {
            int kvh = h / group;
            for (int t = 0; t < seq; t++)
            {
                var qh = q.Slice((t * heads + h) * headDim, headDim);
                double max = double.NegativeInfinity;
                for (int s = 0; s <= t; s++)
                {
                    if (!Visible(layer, t, s)) { scores[s] = double.NegativeInfinity; continue; }
                    scores[s] = TensorPrimitives.Dot(qh, k.Slice((s * kvHeads + kvh) * headDim, headDim)) * scale;
                    max = Math.Max(max, scores[s]);
                }
                double sum = 0;
                for (int s = 0; s <= t; s++)
                {
                    scores[s] = double.IsNegativeInfinity(scores[s]) ? 0 : Math.Exp(scores[s] - max);
                    sum += scores[s];
                }
                Array.Clear(acc);
                for (int s = 0; s <= t; s++)
                    if (scores[s] != 0)
                        TensorPrimitives.MultiplyAdd(v.Slice((s * kvHeads + kvh) * headDim, headDim), (float)(scores[s] / sum), acc, acc);
                acc.CopyTo(output.Slice((t * heads + h) * headDim, headDim));
            }
        }
    }
}
