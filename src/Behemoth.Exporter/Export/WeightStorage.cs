using Behemoth.Exporter.Quantization;
using Behemoth.Formats.Config;
using Behemoth.Package;

namespace Behemoth.Exporter.Export;

/// <summary>
/// The one rule for how many bytes a weight takes in a package, shared by the exporter (which sizes what it writes
/// with it, <see cref="WeightSource"/>) and the planner (<see cref="Pruning.SizeModel"/>, behind <c>behemoth plan</c> and
/// device carving), so that a plan's bytes are the manifest's <c>weight_bytes</c> of the profile it becomes.
/// <list type="bullet">
/// <item>nn.Linear weights [out, in]: float32 (4 bytes), float16 (2 bytes), or int8/int4 in blocks of
/// <see cref="BlockSize"/> along <c>in</c> (the last block padded to a whole block): out · ⌈in / block⌉ blocks of
/// block · bits / 8 packed bytes, plus one <b>float32</b> scale per block (MatMulNBits and QMoE, symmetric, no zero points).</item>
/// <item>Norms, routers, biases, the shared-expert gate and the RoPE tables: always float32.</item>
/// <item>The embedding table: float32 in a float32 package, float16 otherwise (int8/int4 gather float16 rows).</item>
/// <item>The output projection: a tied float32/float16 package reads the embedding table (no bytes of its own);
/// untied, quantized or simulated, it is an nn.Linear of its own.</item>
/// <item>A simulated quantization (<see cref="ExportOptions.SimulateQuantization"/>) stores its linear weights as float32.</item>
/// </list>
/// Byte counts are of the tensors themselves: the weight file's alignment padding between tensors is not referenced by
/// any profile and is not in <c>weight_bytes</c>.
/// </summary>
public sealed record WeightStorage(WeightType Quant, int BlockSize = 32, bool Simulated = false)
{
    public static WeightStorage Of(ExportOptions o) => new(o.Quant, o.BlockSize, o.SimulateQuantization);

    /// <summary>The bits of a block-quantized linear weight as stored (0: stored as floats).</summary>
    public int Bits => Simulated ? 0 : Quant switch { WeightType.Int4 => 4, WeightType.Int8 => 8, _ => 0 };

    /// <summary>How linear weights are stored: the export's precision, or float32 when simulated.</summary>
    public WeightType LinearType => Simulated ? WeightType.Fp32 : Quant;

    public static long Float(long elements) => elements * sizeof(float);

    public static long Half(long elements) => elements * 2;

    /// <summary>Blocks of one row of <paramref name="inDim"/> weights.</summary>
    public long BlocksPerRow(long inDim) => BlockQuantizer.BlocksPerRow(checked((int)inDim), BlockSize);

    /// <summary>Packed bytes of a block-quantized [out, in] weight (without its scales).</summary>
    public long PackedBytes(long outDim, long inDim) => outDim * BlocksPerRow(inDim) * BlockQuantizer.BytesPerBlock(Bits, BlockSize);

    /// <summary>Float32 scales of a block-quantized [out, in] weight: one per block.</summary>
    public long ScaleCount(long outDim, long inDim) => outDim * BlocksPerRow(inDim);

    /// <summary>Bytes of one nn.Linear weight [outDim, inDim] as stored (with its block scales).</summary>
    public long Linear(long outDim, long inDim) => LinearType switch
    {
        WeightType.Fp32 => Float(outDim * inDim),
        WeightType.Fp16 => Half(outDim * inDim),
        _ => PackedBytes(outDim, inDim) + Float(ScaleCount(outDim, inDim)),
    };

    /// <summary>Whether the embedding table is stored as float16 (every package but a float32 one).</summary>
    public bool HalfEmbeddings => Quant != WeightType.Fp32;

    public long Embeddings(long vocab, long hidden) => HalfEmbeddings ? Half(vocab * hidden) : Float(vocab * hidden);

    /// <summary>Whether a tied output projection reads the embedding table itself (float32/float16, not simulated).</summary>
    public bool TiedHeadReadsEmbeddings => Quant is WeightType.Fp32 or WeightType.Fp16 && !Simulated;

    /// <summary>Bytes of the output projection besides the embedding table.</summary>
    public long OutputProjection(DecoderConfig c) => c.TieWordEmbeddings && TiedHeadReadsEmbeddings ? 0 : Linear(c.VocabSize, c.HiddenSize);
}
