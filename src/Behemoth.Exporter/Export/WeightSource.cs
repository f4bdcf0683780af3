using System.Runtime.InteropServices;
using Behemoth.Exporter.Onnx;
using Behemoth.Exporter.Quantization;
using Behemoth.Formats.Checkpoints;

namespace Behemoth.Exporter.Export;

/// <summary>One quantized tensor's error, for the export's summary.</summary>
public sealed record TensorQuantError(string Name, string Format, long Elements, double RelativeError, double MaxAbsError);

/// <summary>
/// Reads checkpoint tensors as float32 and appends them to the package's weight file in the precision and layout an
/// ONNX node wants, emitting that node. One tensor (or one expert) is in memory at a time: this is what keeps the
/// export's memory bounded.
/// </summary>
internal sealed class WeightSource(Checkpoint checkpoint, WeightFile file, GraphBuilder graph, ExportOptions options)
{
    private readonly List<TensorQuantError> _errors = [];

    public ExportOptions Options => options;

    public IReadOnlyList<TensorQuantError> QuantErrors => _errors;

    public float[] Read(string name, params long[] shape) => checkpoint.Get(name).Expect(shape).ReadFloat32();

    /// <summary>The checkpoint tensor, its shape checked (for reading a part of it).</summary>
    public CheckpointTensor Tensor(string name, long[] shape) => checkpoint.Get(name).Expect(shape);

    /// <summary>A float32 initializer with the checkpoint tensor's own shape (norms, routers, biases: never quantized).</summary>
    public string Float(string name, params long[] shape) => Add(name, shape, Read(name, shape));

    public string Add(string onnxName, long[] shape, ReadOnlySpan<float> data) =>
        graph.External(onnxName, ElementType.Float, shape, file.Append(MemoryMarshal.AsBytes(data)));

    /// <summary>
    /// y = x · Wᵀ for an nn.Linear weight [outDim, inDim] read from the checkpoint, in the export's precision:
    /// Gemm (fp32), Cast + Gemm (fp16 storage) or MatMulNBits (int8, int4).
    /// </summary>
    public string Linear(string x, string name, int outDim, int inDim) => Linear(x, name, Read(name, outDim, inDim), outDim, inDim);

    public string Linear(string x, string onnxName, float[] weight, int outDim, int inDim)
    {
        switch (options.Quant)
        {
            case QuantKind.Int4 or QuantKind.Int8 when !options.SimulateQuantization:
            {
                int bits = options.Bits, bs = options.BlockSize;
                int blocks = BlockQuantizer.BlocksPerRow(inDim, bs), blockBytes = BlockQuantizer.BytesPerBlock(bits, bs);
                var packed = new byte[(long)outDim * blocks * blockBytes];
                var scales = new float[outDim * blocks];
                Record(onnxName, BlockQuantizer.Quantize(weight, outDim, inDim, bits, bs, packed, scales));
                string b = graph.External(onnxName + ".q", ElementType.UInt8, [outDim, blocks, blockBytes], file.Append(packed));
                string s = graph.External(onnxName + ".scales", ElementType.Float, [outDim * blocks], file.Append(MemoryMarshal.AsBytes(scales.AsSpan())));
                return graph.Op("MatMulNBits", [x, b, s], DecoderGraph.Attr(("K", inDim), ("N", outDim), ("bits", bits), ("block_size", bs)),
                    domain: GraphBuilder.MicrosoftDomain);
            }
            case QuantKind.Fp16:
            {
                var half = ToHalf(onnxName, weight);
                string w16 = graph.External(onnxName, ElementType.Float16, [outDim, inDim], file.Append(MemoryMarshal.AsBytes(half.AsSpan())));
                return Gemm(x, graph.Op("Cast", [w16], DecoderGraph.Attr(("to", (int)ElementType.Float))));
            }
            default:
                if (options.SimulateQuantization) SimulateInPlace(onnxName, weight, outDim, inDim);
                return Gemm(x, Add(onnxName, [outDim, inDim], weight));
        }
    }

    /// <summary>
    /// A stack of per-expert matrices [count, rows, cols] for the fused MoE kernels, written one expert at a time.
    /// Returns the weight input and, for int8/int4, the scales input [count, rows, blocks] of QMoE.
    /// </summary>
    public (string Weights, string? Scales) ExpertStack(string onnxName, int count, int rows, int cols, Action<int, Span<float>> fill)
    {
        var buffer = new float[(long)rows * cols];
        bool quantized = options.Bits > 0 && !options.SimulateQuantization;
        int bits = options.Bits, bs = options.BlockSize;
        int blocks = quantized ? BlockQuantizer.BlocksPerRow(cols, bs) : 0, blockBytes = quantized ? BlockQuantizer.BytesPerBlock(bits, bs) : 0;
        var packed = quantized ? new byte[(long)rows * blocks * blockBytes] : [];
        var scales = quantized ? new float[rows * blocks] : [];
        var allScales = quantized ? new float[(long)count * rows * blocks] : [];
        var error = new QuantError();
        WeightRegion? first = null;
        for (int e = 0; e < count; e++)
        {
            Array.Clear(buffer);
            fill(e, buffer);
            ReadOnlySpan<byte> bytes;
            if (quantized)
            {
                error.Merge(BlockQuantizer.Quantize(buffer, rows, cols, bits, bs, packed, scales));
                scales.CopyTo(allScales.AsSpan(e * rows * blocks));
                bytes = packed;
            }
            else if (options.Quant == QuantKind.Fp16)
                bytes = MemoryMarshal.AsBytes(ToHalf(null, buffer, error).AsSpan());
            else
            {
                if (options.SimulateQuantization) SimulateInPlace(null, buffer, rows, cols, error);
                bytes = MemoryMarshal.AsBytes(buffer.AsSpan());
            }
            var region = e == 0 ? file.Append(bytes) : file.AppendContiguous(bytes);
            first ??= region;
        }
        var whole = first!.Value with { Length = first.Value.Length * count };
        if (error.Count > 0) Record(onnxName, error);
        if (quantized)
        {
            string w = graph.External(onnxName, ElementType.UInt8, [count, rows, blocks * blockBytes], whole);
            string s = graph.External(onnxName + ".scales", ElementType.Float, [count, rows, blocks], file.Append(MemoryMarshal.AsBytes(allScales.AsSpan())));
            return (w, s);
        }
        if (options.Quant == QuantKind.Fp16)
        {
            string w16 = graph.External(onnxName, ElementType.Float16, [count, rows, cols], whole);
            return (graph.Op("Cast", [w16], DecoderGraph.Attr(("to", (int)ElementType.Float))), null);
        }
        return (graph.External(onnxName, ElementType.Float, [count, rows, cols], whole), null);
    }

    /// <summary>A float16-stored table widened to float32 at load (embeddings of quantized packages).</summary>
    public string Half(string onnxName, long[] shape, float[] data)
    {
        var half = ToHalf(onnxName, data);
        string w16 = graph.External(onnxName, ElementType.Float16, shape, file.Append(MemoryMarshal.AsBytes(half.AsSpan())));
        return graph.Op("Cast", [w16], DecoderGraph.Attr(("to", (int)ElementType.Float)));
    }

    private string Gemm(string x, string weight) => graph.Op("Gemm", [x, weight], DecoderGraph.Attr(("transB", 1)));

    private Half[] ToHalf(string? name, ReadOnlySpan<float> weight, QuantError? into = null)
    {
        var half = new Half[weight.Length];
        var error = into ?? new QuantError();
        for (int i = 0; i < weight.Length; i++)
        {
            half[i] = (Half)weight[i];
            error.Add(weight[i], (float)half[i]);
        }
        if (name is not null) Record(name, error);
        return half;
    }

    private void SimulateInPlace(string? name, Span<float> weight, int rows, int cols, QuantError? into = null)
    {
        int bits = options.Bits, bs = options.BlockSize;
        if (bits == 0) return;
        int blocks = BlockQuantizer.BlocksPerRow(cols, bs);
        var packed = new byte[(long)rows * blocks * BlockQuantizer.BytesPerBlock(bits, bs)];
        var scales = new float[rows * blocks];
        var error = BlockQuantizer.Quantize(weight, rows, cols, bits, bs, packed, scales);
        BlockQuantizer.Dequantize(packed, scales, rows, cols, bits, bs, weight);
        if (name is not null) Record(name, error);
        into?.Merge(error);
    }

    private void Record(string name, QuantError error) =>
        _errors.Add(new TensorQuantError(name, options.QuantName, error.Count, error.RelativeError, error.MaxAbsError));
}
