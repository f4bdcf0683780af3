namespace Behemoth.Formats.Safetensors;

/// <summary>
/// One tensor as a safetensors header declares it. <see cref="Offset"/> is absolute in the file
/// (8-byte length prefix and JSON header included), <see cref="ByteLength"/> equals element count × dtype size.
/// </summary>
public sealed record TensorEntry(string Name, SafetensorsDType DType, long[] Shape, long Offset, long ByteLength)
{
    /// <summary>Number of elements (1 for a scalar with an empty shape).</summary>
    public long ElementCount => ByteLength / DType.SizeInBytes();

    public string ShapeText => Format(Shape);

    public static string Format(IReadOnlyList<long> shape) => "[" + string.Join(", ", shape) + "]";
}
