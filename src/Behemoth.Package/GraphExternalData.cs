using System.Text;

namespace Behemoth.Package;

/// <summary>One tensor whose bytes a graph keeps in an external file: where they are, and what they hold.</summary>
/// <param name="Name">The tensor's name in the graph.</param>
/// <param name="Location">The file, relative to the graph's directory, as the graph names it.</param>
/// <param name="Offset">Where its bytes start in the file.</param>
/// <param name="Length">How many bytes it takes.</param>
/// <param name="DataType">ONNX TensorProto.DataType (1 float, 2 uint8, 3 int8, 7 int64, 10 float16, …).</param>
/// <param name="Dims">Its shape.</param>
public sealed record ExternalTensor(string Name, string Location, long Offset, long Length, int DataType, long[] Dims);

/// <summary>
/// Reads, out of an ONNX model's bytes, every tensor stored as external data (the initializers ONNX Runtime will load
/// from another file): the regions of the weight files a profile's graph really uses, taken from the graph itself
/// rather than from what a manifest claims. Any tensor marked external anywhere in the model (graph initializers,
/// sparse initializers, node attributes, subgraphs, functions) is found, so none is loaded unchecked.
/// </summary>
/// <remarks>
/// A minimal protobuf walk over onnx.proto's fields: ModelProto.graph (7) and functions (25); GraphProto.node (1),
/// initializer (5), sparse_initializer (15); NodeProto.attribute (5); AttributeProto.t (5), g (6), tensors (10),
/// graphs (11), sparse_tensor (22), sparse_tensors (23); SparseTensorProto.values (1), indices (2); FunctionProto.node (7);
/// TensorProto.dims (1), data_type (2), name (8), external_data (13: key 1, value 2), data_location (14, EXTERNAL = 1).
/// </remarks>
public static class GraphExternalData
{
    private const int MaxDepth = 64;

    /// <summary>The external tensors of the model in <paramref name="model"/> (<paramref name="path"/> names it in errors).</summary>
    /// <exception cref="PackageFormatException">The bytes are not a well-formed model, or an external reference is incomplete.</exception>
    public static IReadOnlyList<ExternalTensor> Read(ReadOnlySpan<byte> model, string path)
    {
        var found = new List<ExternalTensor>();
        try
        {
            Walk(model, Message.Model, found, path, 0);
        }
        catch (Exception e) when (e is IndexOutOfRangeException or ArgumentOutOfRangeException or OverflowException or DecoderFallbackException)
        {
            throw new PackageFormatException(path, "not a well-formed ONNX model (the protobuf is cut short or malformed)");
        }
        return found;
    }

    private enum Message { Model, Graph, Node, Attribute, Sparse, Function }

    private static void Walk(ReadOnlySpan<byte> data, Message kind, List<ExternalTensor> found, string path, int depth)
    {
        if (depth > MaxDepth) throw new PackageFormatException(path, $"graphs nested deeper than {MaxDepth} levels");
        int pos = 0;
        while (pos < data.Length)
        {
            ulong key = Varint(data, ref pos);
            int field = (int)(key >> 3), wire = (int)(key & 7);
            if (wire != 2)
            {
                Skip(data, ref pos, wire, path);
                continue;
            }
            var body = LengthDelimited(data, ref pos);
            switch (kind, field)
            {
                case (Message.Model, 7): case (Message.Attribute, 6): case (Message.Attribute, 11):
                    Walk(body, Message.Graph, found, path, depth + 1); break;
                case (Message.Model, 25): Walk(body, Message.Function, found, path, depth + 1); break;
                case (Message.Graph, 1): case (Message.Function, 7): Walk(body, Message.Node, found, path, depth + 1); break;
                case (Message.Graph, 5): case (Message.Attribute, 5): case (Message.Attribute, 10): case (Message.Sparse, 1): case (Message.Sparse, 2):
                    Tensor(body, found, path); break;
                case (Message.Graph, 15): case (Message.Attribute, 22): case (Message.Attribute, 23):
                    Walk(body, Message.Sparse, found, path, depth + 1); break;
                case (Message.Node, 5): Walk(body, Message.Attribute, found, path, depth + 1); break;
            }
        }
    }

    private static void Tensor(ReadOnlySpan<byte> data, List<ExternalTensor> found, string path)
    {
        var dims = new List<long>();
        int dataType = 0;
        bool external = false;
        string name = "";
        string? location = null;
        long? offset = null, length = null;
        int pos = 0;
        while (pos < data.Length)
        {
            ulong key = Varint(data, ref pos);
            int field = (int)(key >> 3), wire = (int)(key & 7);
            if (field == 1 && wire == 0) dims.Add((long)Varint(data, ref pos));
            else if (field == 1 && wire == 2)
            {
                var packed = LengthDelimited(data, ref pos);
                for (int p = 0; p < packed.Length;) dims.Add((long)Varint(packed, ref p));
            }
            else if (field == 2 && wire == 0) dataType = (int)Varint(data, ref pos);
            else if (field == 8 && wire == 2) name = Encoding.UTF8.GetString(LengthDelimited(data, ref pos));
            else if (field == 14 && wire == 0) external = Varint(data, ref pos) == 1;
            else if (field == 13 && wire == 2)
            {
                var (k, v) = Entry(LengthDelimited(data, ref pos));
                switch (k)
                {
                    case "location": location = v; break;
                    case "offset": offset = ParseSize(v, name, k, path); break;
                    case "length": length = ParseSize(v, name, k, path); break;
                }
            }
            else Skip(data, ref pos, wire, path);
        }
        if (!external && location is null) return;
        if (location is null || offset is null || length is null)
            throw new PackageFormatException(path, $"tensor '{name}' is stored externally without a location, offset and length");
        found.Add(new ExternalTensor(name, location, offset.Value, length.Value, dataType, [.. dims]));
    }

    private static long ParseSize(string value, string tensor, string key, string path) =>
        long.TryParse(value, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out long n)
            ? n : throw new PackageFormatException(path, $"tensor '{tensor}': external {key} '{value}' is not a byte count");

    private static (string Key, string Value) Entry(ReadOnlySpan<byte> data)
    {
        string k = "", v = "";
        int pos = 0;
        while (pos < data.Length)
        {
            ulong key = Varint(data, ref pos);
            int field = (int)(key >> 3), wire = (int)(key & 7);
            if (wire == 2 && field is 1 or 2)
            {
                string s = Encoding.UTF8.GetString(LengthDelimited(data, ref pos));
                if (field == 1) k = s; else v = s;
            }
            else Skip(data, ref pos, wire, "");
        }
        return (k, v);
    }

    private static ReadOnlySpan<byte> LengthDelimited(ReadOnlySpan<byte> data, ref int pos)
    {
        ulong n = Varint(data, ref pos);
        if (n > (ulong)(data.Length - pos)) throw new ArgumentOutOfRangeException(nameof(data));
        var body = data.Slice(pos, (int)n);
        pos += (int)n;
        return body;
    }

    private static ulong Varint(ReadOnlySpan<byte> data, ref int pos)
    {
        ulong value = 0;
        for (int shift = 0; shift < 64; shift += 7)
        {
            byte b = data[pos++];
            value |= (ulong)(b & 0x7F) << shift;
            if (b < 0x80) return value;
        }
        throw new OverflowException("varint longer than 10 bytes");
    }

    private static void Skip(ReadOnlySpan<byte> data, ref int pos, int wire, string path)
    {
        switch (wire)
        {
            case 0: Varint(data, ref pos); break;
            case 1: pos = checked(pos + 8); break;
            case 2: LengthDelimited(data, ref pos); break;
            case 5: pos = checked(pos + 4); break;
            default: throw new PackageFormatException(path, $"protobuf wire type {wire} is not valid in an ONNX model");
        }
        if (pos > data.Length) throw new ArgumentOutOfRangeException(nameof(data));
    }
}
