using Behemoth.Exporter.Export;
using Behemoth.Formats.Config;
using Behemoth.Package;

namespace Behemoth.Exporter.Pruning;

/// <summary>
/// What a package's weights and KV cache take, computed from the config the way the exporter stores them: the
/// bytes every profile needs (embeddings, attention, norms, routers, shared experts, dense layers) and the bytes of
/// one routed expert, at a precision. Alignment padding is left out (at most 4 KiB per tensor).
/// </summary>
public sealed class SizeModel(DecoderConfig c, WeightType quant, int blockSize = 32)
{
    /// <summary>Bytes of one nn.Linear weight [outDim, inDim] in the export's precision (with its block scales).</summary>
    public long Linear(long outDim, long inDim) => quant switch
    {
        WeightType.Fp32 => outDim * inDim * 4,
        WeightType.Fp16 => outDim * inDim * 2,
        _ => outDim * ((inDim + blockSize - 1) / blockSize) * (blockSize * (quant == WeightType.Int4 ? 4 : 8) / 8 + 4),
    };

    public long PerExpert => Linear(2L * c.Moe.ExpertIntermediate, c.HiddenSize) + Linear(c.HiddenSize, c.Moe.ExpertIntermediate);

    public long NonExpert
    {
        get
        {
            long h = c.HiddenSize, d = c.HeadDim, q = c.NumHeads * d, kv = c.NumKvHeads * d;
            long total = c.VocabSize * h * (quant == WeightType.Fp32 ? 4 : 2);                   // embeddings (fp16 when quantized)
            if (!c.TieWordEmbeddings || quant is WeightType.Int4 or WeightType.Int8) total += Linear(c.VocabSize, h);   // output projection
            total += h * 4;                                                                      // final norm
            int positions = Math.Min(c.MaxPositionEmbeddings, new ExportOptions().MaxContext);
            if (c.Layers.Any(l => l.UseRope)) total += 2L * positions * (d / 2) * 4;            // RoPE tables
            foreach (var l in c.Layers)
            {
                total += Linear(q, h) + 2 * Linear(kv, h) + Linear(h, q) + 2 * h * 4;             // attention, two norms
                if (c.QkvBias) total += (q + 2 * kv) * 4;
                if (l.QkNorm is QkNormKind.ProjectionRms) total += (q + kv) * 4;
                if (l.QkNorm is QkNormKind.PerHeadRms) total += 2 * d * 4;
                if (l.FeedForward == FeedForwardKind.Moe)
                {
                    total += (long)c.Moe.NumExperts * h * 4;                                     // router (fp32)
                    if (c.Moe.SharedIntermediate > 0) total += 2 * Linear(c.Moe.SharedIntermediate, h) + Linear(h, c.Moe.SharedIntermediate);
                    if (c.Moe.SharedExpertSigmoidGate) total += h * 4;
                }
                else
                    total += 2 * Linear(l.DenseIntermediate, h) + Linear(h, l.DenseIntermediate);
            }
            return total;
        }
    }

    /// <summary>Float32 keys and values of one sequence of <paramref name="tokens"/>: chunked and sliding layers hold one window at most.</summary>
    public long KvCache(int tokens) =>
        Package.ProfileSelection.KvCacheBytes(Export.Blocks.AttentionBlock.KvCacheLayout(c, new ExportOptions()), c.NumLayers, c.NumKvHeads, c.HeadDim, tokens);
}
