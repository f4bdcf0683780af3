namespace Behemoth.Exporter.Quantization;

/// <summary>
/// Symmetric block-wise integer quantization of a [rows, cols] matrix along its columns, in the layout of ONNX
/// Runtime's MatMulNBits and QMoE: per row, blocks of <c>blockSize</c> columns share one float scale;
/// q = round(w / scale) + 2^(bits-1) is stored unsigned (4-bit: two per byte, the even column in the low nibble),
/// so the kernels' default zero point 2^(bits-1) applies and no zero-point tensor is stored. The last block of a
/// row is zero-padded when cols is not a multiple of the block size.
/// </summary>
public static class BlockQuantizer
{
    public static int BlocksPerRow(int cols, int blockSize) => (cols + blockSize - 1) / blockSize;

    public static int BytesPerBlock(int bits, int blockSize) => blockSize * bits / 8;

    /// <summary>Quantizes <paramref name="w"/>; writes packed bytes [rows, blocks, bytesPerBlock] and scales [rows, blocks], returns the error.</summary>
    public static QuantError Quantize(ReadOnlySpan<float> w, int rows, int cols, int bits, int blockSize, Span<byte> packed, Span<float> scales)
    {
        if (bits is not (4 or 8)) throw new ArgumentOutOfRangeException(nameof(bits), "bits must be 4 or 8");
        int blocks = BlocksPerRow(cols, blockSize), blockBytes = BytesPerBlock(bits, blockSize);
        int maxQ = (1 << (bits - 1)) - 1;          // 7 or 127: symmetric range, -8 / -128 unused
        int zero = 1 << (bits - 1);
        var error = new QuantError();
        packed[..(rows * blocks * blockBytes)].Clear();
        for (int r = 0; r < rows; r++)
        {
            var row = w.Slice(r * cols, cols);
            for (int b = 0; b < blocks; b++)
            {
                int start = b * blockSize, end = Math.Min(cols, start + blockSize);
                float absMax = 0;
                for (int c = start; c < end; c++) absMax = Math.Max(absMax, Math.Abs(row[c]));
                float scale = absMax / maxQ;
                scales[r * blocks + b] = scale;
                float inverse = scale == 0 ? 0 : 1 / scale;
                var dest = packed.Slice((r * blocks + b) * blockBytes, blockBytes);
                for (int c = start; c < end; c++)
                {
                    int q = Math.Clamp((int)MathF.Round(row[c] * inverse, MidpointRounding.ToEven), -maxQ, maxQ);
                    error.Add(row[c], q * scale);
                    int stored = q + zero, i = c - start;
                    if (bits == 8) dest[i] = (byte)stored;
                    else dest[i / 2] |= (byte)((i & 1) == 0 ? stored : stored << 4);
                }
            }
        }
        return error;
    }

    /// <summary>The float values the kernels see: (q - 2^(bits-1)) · scale.</summary>
    public static void Dequantize(ReadOnlySpan<byte> packed, ReadOnlySpan<float> scales, int rows, int cols, int bits, int blockSize, Span<float> w)
    {
        int blocks = BlocksPerRow(cols, blockSize), blockBytes = BytesPerBlock(bits, blockSize);
        int zero = 1 << (bits - 1);
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < cols; c++)
            {
                int b = c / blockSize, i = c % blockSize;
                byte raw = packed[(r * blocks + b) * blockBytes + (bits == 8 ? i : i / 2)];
                int stored = bits == 8 ? raw : (i & 1) == 0 ? raw & 0xF : raw >> 4;
                w[r * cols + c] = (stored - zero) * scales[r * blocks + b];
            }
    }
}

/// <summary>Accumulates how far quantized weights are from the originals.</summary>
public sealed class QuantError
{
    private double _squaredError, _squaredValue;

    public double MaxAbsError { get; private set; }
    public long Count { get; private set; }

    public void Add(float original, float quantized)
    {
        double d = original - quantized;
        _squaredError += d * d;
        _squaredValue += (double)original * original;
        MaxAbsError = Math.Max(MaxAbsError, Math.Abs(d));
        Count++;
    }

    public void Merge(QuantError other)
    {
        _squaredError += other._squaredError;
        _squaredValue += other._squaredValue;
        MaxAbsError = Math.Max(MaxAbsError, other.MaxAbsError);
        Count += other.Count;
    }

    /// <summary>‖W − Q(W)‖ / ‖W‖.</summary>
    public double RelativeError => _squaredValue == 0 ? 0 : Math.Sqrt(_squaredError / _squaredValue);
}
