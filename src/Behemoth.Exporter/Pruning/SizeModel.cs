using Behemoth.Exporter.Export;
using Behemoth.Formats.Config;
using Behemoth.Package;

namespace Behemoth.Exporter.Pruning;

/// <summary>
/// What a profile's weights and KV cache take, from the config and the export's options, by the storage rule the
/// exporter writes with (<see cref="WeightStorage"/>): the bytes every profile references (embeddings, attention,
/// norms, shared experts, dense layers, output projection, RoPE tables up to <see cref="ExportOptions.MaxContext"/>)
/// and the bytes one kept routed expert adds (its matrices and its router row: a pruned profile's router holds the
/// rows of its kept experts only). <c>NonExpert + kept · PerExpert</c> is the manifest's <c>weight_bytes</c> of
/// that profile, exactly (padding between tensors is in neither).
/// </summary>
public sealed class SizeModel
{
    private readonly DecoderConfig _c;
    private readonly ExportOptions _options;

    /// <summary>The sizes of an export of <paramref name="config"/> with <paramref name="options"/> (its precision, block size, MaxContext, layers).</summary>
    public SizeModel(DecoderConfig config, ExportOptions options)
    {
        _c = options.Layers is int keep && keep >= 1 && keep <= config.NumLayers ? config with { Layers = config.Layers.Take(keep).ToArray() } : config;
        _options = options;
        Storage = WeightStorage.Of(options);
    }

    /// <summary>The sizes of an export at <paramref name="quant"/> and <paramref name="blockSize"/> with the other options at their defaults.</summary>
    public SizeModel(DecoderConfig config, WeightType quant, int blockSize = 32) : this(config, new ExportOptions { Quant = quant, BlockSize = blockSize }) { }

    public WeightStorage Storage { get; }

    /// <summary>Bytes of one nn.Linear weight [outDim, inDim] in the export's precision (with its block scales).</summary>
    public long Linear(long outDim, long inDim) => Storage.Linear(outDim, inDim);

    /// <summary>One routed expert: gate and up [intermediate, hidden] (fused: fc1 [2·intermediate, hidden]), down [hidden, intermediate], its router row.</summary>
    public long PerExpert =>
        Linear(2L * _c.Moe.ExpertIntermediate, _c.HiddenSize) + Linear(_c.HiddenSize, _c.Moe.ExpertIntermediate) + WeightStorage.Float(_c.HiddenSize);

    /// <summary>Bytes every profile references, whatever experts it keeps.</summary>
    public long NonExpert
    {
        get
        {
            var c = _c;
            long h = c.HiddenSize, d = c.HeadDim, q = c.NumHeads * d, kv = c.NumKvHeads * d;
            long total = Storage.Embeddings(c.VocabSize, h) + Storage.OutputProjection(c);
            total += WeightStorage.Float(h);                                                      // final norm
            long positions = Math.Min(c.MaxPositionEmbeddings, _options.MaxContext);
            if (c.Layers.Any(l => l.UseRope)) total += 2 * WeightStorage.Float(positions * (d / 2));   // RoPE cos and sin tables
            foreach (var l in c.Layers)
            {
                total += Linear(q, h) + 2 * Linear(kv, h) + Linear(h, q) + 2 * WeightStorage.Float(h);   // attention, two norms
                if (c.QkvBias) total += WeightStorage.Float(q + 2 * kv);
                if (c.OutputBias) total += WeightStorage.Float(h);
                if (l.QkNorm is QkNormKind.ProjectionRms) total += WeightStorage.Float(q + kv);
                if (l.QkNorm is QkNormKind.PerHeadRms) total += WeightStorage.Float(2 * d);
                if (l.FeedForward == FeedForwardKind.Moe)
                {
                    if (c.Moe.SharedIntermediate > 0) total += 2 * Linear(c.Moe.SharedIntermediate, h) + Linear(h, c.Moe.SharedIntermediate);
                    if (c.Moe.SharedExpertSigmoidGate) total += WeightStorage.Float(h);
                }
                else
                    total += 2 * Linear(l.DenseIntermediate, h) + Linear(h, l.DenseIntermediate);
            }
            return total;
        }
    }

    /// <summary>Weight bytes of a profile keeping <paramref name="keptExperts"/> routed experts in all (over every MoE layer).</summary>
    public long Profile(long keptExperts) => NonExpert + keptExperts * PerExpert;

    /// <summary>Float32 keys and values of one sequence of <paramref name="tokens"/>: chunked and sliding layers hold one window at most.</summary>
    public long KvCache(int tokens) =>
        ProfileSelection.KvCacheBytes(Export.Blocks.AttentionBlock.KvCacheLayout(_c, _options), _c.NumLayers, _c.NumKvHeads, _c.HeadDim, tokens);
}
