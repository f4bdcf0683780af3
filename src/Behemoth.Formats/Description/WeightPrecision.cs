namespace Behemoth.Formats.Description;

/// <summary>
/// A weight precision for size estimates. Quantized formats are block-wise with one float16 scale per block
/// (ONNX Runtime's MatMulNBits layout, symmetric, 32 weights per block by default); routers, norms and biases
/// stay float32 at every precision.
/// This is <c>behemoth inspect</c>'s <b>estimate</b> for any published checkpoint, from its config alone (int4 is 4.5
/// bits a weight, every tensor but the full-precision ones quantized, no per-row block padding), and the figures it
/// prints are compared with published sizes. It is not what a Behemoth package stores: the exporter, <c>behemoth
/// plan</c> and device carving share the exact rule of Behemoth.Exporter's <c>WeightStorage</c> (float32 scales,
/// rows padded to whole blocks, the embedding table float16 when quantized, RoPE tables to the export's MaxContext),
/// which this assembly cannot reference (the exporter depends on it, not the other way).
/// </summary>
public sealed record WeightPrecision(string Name, int Bits, int BlockSize = 0)
{
    public static readonly WeightPrecision Fp32 = new("fp32", 32);
    public static readonly WeightPrecision Fp16 = new("fp16", 16);
    public static readonly WeightPrecision Int8 = new("int8", 8, 32);
    public static readonly WeightPrecision Int4 = new("int4", 4, 32);

    public static IReadOnlyList<WeightPrecision> Standard { get; } = [Fp16, Int8, Int4];

    public long BytesFor(long elements, bool keptFullPrecision)
    {
        if (keptFullPrecision) return elements * 4;
        long bits = elements * Bits;
        if (BlockSize > 0) bits += (elements + BlockSize - 1) / BlockSize * 16;
        return (bits + 7) / 8;
    }
}
