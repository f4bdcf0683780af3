namespace Behemoth.Formats.Description;

/// <summary>
/// A weight precision for size estimates. Quantized formats are block-wise with one float16 scale per block
/// (ONNX Runtime's MatMulNBits layout, symmetric, 32 weights per block by default); routers, norms and biases
/// stay float32 at every precision.
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
