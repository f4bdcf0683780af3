using System.Runtime.InteropServices;
using Behemoth.Exporter.Onnx;
using Behemoth.Exporter.Quantization;
using Behemoth.Formats.Checkpoints;
using Behemoth.Package;

namespace Behemoth.Exporter.Export;

/// <summary>One quantized tensor's error, for the export's summary.</summary>
public sealed record TensorQuantError(string Name, string Format, long Elements, double RelativeError, double MaxAbsError);

/// <summary>
/// Reads checkpoint tensors as float32 and appends them to the package's weight file in the precision and layout an
/// ONNX node wants, emitting that node. One tensor (or one expert) is in memory at a time: this is what keeps the
/// export's memory bounded.
/// Every tensor is written once, under its name: the graphs of further device profiles (see <see cref="Graph"/>)
/// reference the bytes already written, which is how profiles share weights. Weights are therefore passed lazily
/// (a function that reads them), so a tensor that is already stored is not read again.
/// </summary>
internal sealed class WeightSource(Checkpoint checkpoint, WeightFile file, GraphBuilder graph, ExportOptions options)
{
    private readonly List<TensorQuantError> _errors = [];
    private readonly Dictionary<string, WeightRegion> _stored = new(StringComparer.Ordinal);
    private GraphBuilder _graph = graph;

    public ExportOptions Options => options;

    /// <summary>The storage rule the written tensors follow (and the planner predicts with).</summary>
    public WeightStorage Storage { get; } = WeightStorage.Of(options);

    public IReadOnlyList<TensorQuantError> QuantErrors => _errors;

    /// <summary>The graph that nodes and initializer references go to; switched to build the next profile's graph.</summary>
    public GraphBuilder Graph
    {
        get => _graph;
        set
        {
            (_graph, GraphWeightBytes) = (value, 0);
            _regions.Clear();
        }
    }

    private readonly List<(long Offset, long Length)> _regions = [];

    /// <summary>Bytes of the weight file that <see cref="Graph"/> references (what a runtime loading it reads).</summary>
    public long GraphWeightBytes { get; private set; }

    /// <summary>The [offset, length] ranges <see cref="Graph"/> references, sorted, adjacent ones merged.</summary>
    public IReadOnlyList<long[]> GraphRegions()
    {
        var merged = new List<long[]>();
        foreach (var (offset, length) in _regions.OrderBy(r => r.Offset))
        {
            if (merged.Count > 0 && merged[^1][0] + merged[^1][1] >= offset)
                merged[^1][1] = Math.Max(merged[^1][1], offset + length - merged[^1][0]);
            else
                merged.Add([offset, length]);
        }
        return merged;
    }

    public float[] Read(string name, params long[] shape) => checkpoint.Get(name).Expect(shape).ReadFloat32();

    /// <summary>The checkpoint tensor, its shape checked (for reading a part of it).</summary>
    public CheckpointTensor Tensor(string name, long[] shape) => checkpoint.Get(name).Expect(shape);

    /// <summary>A float32 initializer with the checkpoint tensor's own shape (norms, routers, biases: never quantized).</summary>
    public string Float(string name, params long[] shape) => Add(name, shape, () => Read(name, shape));

    public string Add(string onnxName, long[] shape, Func<float[]> data)
    {
        if (!_stored.ContainsKey(onnxName)) Store(onnxName, file.Append(MemoryMarshal.AsBytes(data().AsSpan())));
        return Reference(onnxName, ElementType.Float, shape);
    }

    /// <summary>
    /// y = x · Wᵀ for an nn.Linear weight [outDim, inDim] read from the checkpoint, in the export's precision:
    /// Gemm (fp32), Cast + Gemm (fp16 storage) or MatMulNBits (int8, int4).
    /// </summary>
    public string Linear(string x, string name, int outDim, int inDim) => Linear(x, name, () => Read(name, outDim, inDim), outDim, inDim);

    public string Linear(string x, string onnxName, Func<float[]> weight, int outDim, int inDim)
    {
        switch (options.Quant)
        {
            case WeightType.Int4 or WeightType.Int8 when !options.SimulateQuantization:
            {
                int bits = options.Bits, bs = options.BlockSize;
                int blocks = BlockQuantizer.BlocksPerRow(inDim, bs), blockBytes = BlockQuantizer.BytesPerBlock(bits, bs);
                if (!_stored.ContainsKey(onnxName + ".q"))
                {
                    var packed = new byte[Storage.PackedBytes(outDim, inDim)];
                    var scales = new float[Storage.ScaleCount(outDim, inDim)];
                    Record(onnxName, BlockQuantizer.Quantize(weight(), outDim, inDim, bits, bs, packed, scales));
                    Store(onnxName + ".q", file.Append(packed));
                    Store(onnxName + ".scales", file.Append(MemoryMarshal.AsBytes(scales.AsSpan())));
                }
                string b = Reference(onnxName + ".q", ElementType.UInt8, [outDim, blocks, blockBytes]);
                string s = Reference(onnxName + ".scales", ElementType.Float, [outDim * blocks]);
                return _graph.Op("MatMulNBits", [x, b, s], Blocks.Ops.Attr(("K", inDim), ("N", outDim), ("bits", bits), ("block_size", bs)),
                    domain: GraphBuilder.MicrosoftDomain);
            }
            case WeightType.Fp16:
            {
                if (!_stored.ContainsKey(onnxName))
                    Store(onnxName, file.Append(MemoryMarshal.AsBytes(ToHalf(onnxName, weight()).AsSpan())));
                string w16 = Reference(onnxName, ElementType.Float16, [outDim, inDim]);
                return Gemm(x, _graph.Op("Cast", [w16], Blocks.Ops.Attr(("to", (int)ElementType.Float))));
            }
            default:
                return Gemm(x, Add(onnxName, [outDim, inDim], () =>
                {
                    float[] w = weight();
                    if (options.SimulateQuantization) SimulateInPlace(onnxName, w, outDim, inDim);
                    return w;
                }));
        }
    }

    /// <summary>
    /// A stack of per-expert matrices [count, rows, cols] for the fused MoE kernels, written one expert at a time in
    /// storage order (<paramref name="fill"/> gets the index in that order). The graph gets <paramref name="keep"/>
    /// experts from <paramref name="start"/>: a profile that keeps a run of the stack references a slice of the same bytes.
    /// Returns the weight input and, for int8/int4, the scales input [keep, rows, blocks] of QMoE.
    /// </summary>
    public (string Weights, string? Scales) ExpertStack(string onnxName, int count, int start, int keep, int rows, int cols, Action<int, Span<float>> fill)
    {
        bool quantized = options.Bits > 0 && !options.SimulateQuantization;
        int bits = options.Bits, bs = options.BlockSize;
        int blocks = quantized ? BlockQuantizer.BlocksPerRow(cols, bs) : 0, blockBytes = quantized ? BlockQuantizer.BytesPerBlock(bits, bs) : 0;
        if (!_stored.ContainsKey(onnxName)) WriteStack(onnxName, count, rows, cols, fill, quantized, blocks, blockBytes);
        string name = keep == count ? onnxName : $"{onnxName}.{start}-{start + keep}";
        WeightRegion Slice(string stored)
        {
            var whole = _stored[stored];
            long per = whole.Length / count;
            return whole with { Offset = whole.Offset + per * start, Length = per * keep };
        }
        if (quantized)
        {
            string w = Reference(name, ElementType.UInt8, [keep, rows, blocks * blockBytes], Slice(onnxName));
            string s = Reference(name + ".scales", ElementType.Float, [keep, rows, blocks], Slice(onnxName + ".scales"));
            return (w, s);
        }
        if (options.Quant == WeightType.Fp16)
        {
            string w16 = Reference(name, ElementType.Float16, [keep, rows, cols], Slice(onnxName));
            return (_graph.Op("Cast", [w16], Blocks.Ops.Attr(("to", (int)ElementType.Float))), null);
        }
        return (Reference(name, ElementType.Float, [keep, rows, cols], Slice(onnxName)), null);
    }

    private void WriteStack(string onnxName, int count, int rows, int cols, Action<int, Span<float>> fill, bool quantized, int blocks, int blockBytes)
    {
        var buffer = new float[(long)rows * cols];
        int bits = options.Bits, bs = options.BlockSize;
        var packed = quantized ? new byte[Storage.PackedBytes(rows, cols)] : [];
        var scales = quantized ? new float[Storage.ScaleCount(rows, cols)] : [];
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
            else if (options.Quant == WeightType.Fp16)
                bytes = MemoryMarshal.AsBytes(ToHalf(null, buffer, error).AsSpan());
            else
            {
                if (options.SimulateQuantization) SimulateInPlace(null, buffer, rows, cols, error);
                bytes = MemoryMarshal.AsBytes(buffer.AsSpan());
            }
            var region = e == 0 ? file.Append(bytes) : file.AppendContiguous(bytes);
            first ??= region;
        }
        if (error.Count > 0) Record(onnxName, error);
        Store(onnxName, first!.Value with { Length = first.Value.Length * count });
        if (quantized) Store(onnxName + ".scales", file.Append(MemoryMarshal.AsBytes(allScales.AsSpan())));
    }

    private void Store(string name, WeightRegion region) => _stored.Add(name, region);

    /// <summary>Adds an initializer for stored bytes to the current graph.</summary>
    private string Reference(string name, ElementType type, long[] dims, WeightRegion? region = null)
    {
        var r = region ?? _stored[name];
        GraphWeightBytes += r.Length;
        _regions.Add((r.Offset, r.Length));
        return _graph.External(name, type, dims, r);
    }

    /// <summary>A float16-stored table widened to float32 at load (ONNX Runtime folds the Cast into a float32 copy).</summary>
    public string Half(string onnxName, long[] shape, Func<float[]> data) =>
        _graph.Op("Cast", [HalfTable(onnxName, shape, data)], Blocks.Ops.Attr(("to", (int)ElementType.Float)));

    /// <summary>The float16 initializer itself, for ops that read it as float16 (a Gather of embedding rows).</summary>
    public string HalfTable(string onnxName, long[] shape, Func<float[]> data)
    {
        if (!_stored.ContainsKey(onnxName)) Store(onnxName, file.Append(MemoryMarshal.AsBytes(ToHalf(onnxName, data()).AsSpan())));
        return Reference(onnxName, ElementType.Float16, shape);
    }

    private string Gemm(string x, string weight) => _graph.Op("Gemm", [x, weight], Blocks.Ops.Attr(("transB", 1)));

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
