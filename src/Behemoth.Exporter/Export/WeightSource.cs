using System.Runtime.InteropServices;
using Behemoth.Exporter.Onnx;
using Behemoth.Formats.Checkpoints;

namespace Behemoth.Exporter.Export;

/// <summary>
/// Reads checkpoint tensors as float32 and appends them to the package's weight file in the layout an ONNX node wants.
/// One tensor (or one expert) is in memory at a time: this is what keeps the export's memory bounded.
/// </summary>
internal sealed class WeightSource(Checkpoint checkpoint, WeightFile file, GraphBuilder graph)
{
    /// <summary>Bytes appended per tensor role, for the export summary.</summary>
    public long BytesWritten { get; private set; }

    public float[] Read(string name, params long[] shape) => checkpoint.Get(name).Expect(shape).ReadFloat32();

    /// <summary>The checkpoint tensor, its shape checked (for reading a part of it).</summary>
    public CheckpointTensor Tensor(string name, long[] shape) => checkpoint.Get(name).Expect(shape);

    /// <summary>A float32 initializer with the checkpoint tensor's own shape (e.g. [out, in] for Gemm with transB=1).</summary>
    public string Float(string name, params long[] shape)
    {
        float[] data = Read(name, shape);
        return Add(name, shape, data);
    }

    public string Add(string onnxName, long[] shape, ReadOnlySpan<float> data)
    {
        var region = file.Append(MemoryMarshal.AsBytes(data));
        BytesWritten += region.Length;
        return graph.External(onnxName, ElementType.Float, shape, region);
    }

    /// <summary>
    /// An initializer of shape [count, ...inner] written one block at a time: <paramref name="block"/> fills block i
    /// (inner elements) and the blocks land back to back, so only one is ever in memory.
    /// </summary>
    public string Stacked(string onnxName, int count, long[] inner, Action<int, Span<float>> block)
    {
        long elements = inner.Aggregate(1L, (a, b) => a * b);
        var buffer = new float[elements];
        WeightRegion? first = null;
        for (int i = 0; i < count; i++)
        {
            Array.Clear(buffer);
            block(i, buffer);
            var region = i == 0 ? file.Append(MemoryMarshal.AsBytes(buffer.AsSpan())) : file.AppendContiguous(MemoryMarshal.AsBytes(buffer.AsSpan()));
            first ??= region;
            BytesWritten += region.Length;
        }
        var whole = first!.Value with { Length = elements * sizeof(float) * count };
        return graph.External(onnxName, ElementType.Float, [count, .. inner], whole);
    }
}
