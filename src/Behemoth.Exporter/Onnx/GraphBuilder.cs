using Behemoth.Exporter.Onnx.Proto;
using Google.Protobuf;

namespace Behemoth.Exporter.Onnx;

/// <summary>ONNX element types Behemoth writes (values are TensorProto.DataType).</summary>
public enum ElementType
{
    Float = 1,
    UInt8 = 2,
    Int8 = 3,
    Int32 = 6,
    Int64 = 7,
    Bool = 9,
    Float16 = 10,
}

/// <summary>
/// Builds one ONNX graph node by node. Values are strings (ONNX names); each helper returns the name of its output,
/// so graph code reads like the math it writes. Large initializers live in external weight files
/// (<see cref="WeightFile"/>); small constants are embedded.
/// Nodes are named by where they sit in the model, as paths: graph code opens a <see cref="Scope"/> per module
/// (<c>model</c>, <c>layers.3</c>, <c>attn</c>, <c>q_proj</c>) and a node is named <c>/model/layers.3/attn/q_proj/Gemm</c>,
/// with <c>_1</c>, <c>_2</c>… for further nodes of the same type in the same scope; its outputs are
/// <c>&lt;node&gt;_output_&lt;i&gt;</c>. Every node name is unique within the graph.
/// </summary>
public sealed class GraphBuilder
{
    public const string MicrosoftDomain = "com.microsoft";

    private readonly GraphProto _graph = new();
    private readonly HashSet<string> _names = new(StringComparer.Ordinal);
    private readonly Dictionary<string, string> _constants = new(StringComparer.Ordinal);
    private readonly HashSet<string> _nodeNames = new(StringComparer.Ordinal);
    private readonly List<string> _scopes = [];
    private int _counter;

    public GraphBuilder(string name) => _graph.Name = name;

    public int NodeCount => _graph.Node.Count;

    /// <summary>A fresh value name with a readable prefix (constants).</summary>
    private string Name(string prefix)
    {
        string name;
        do name = $"{prefix}_{_counter++}"; while (!_names.Add(name));
        return name;
    }

    /// <summary>The current scope's path: <c>/model/layers.3/attn</c> ("" at the root).</summary>
    public string ScopePath => _scopes.Count == 0 ? "" : _scopes[^1];

    /// <summary>
    /// Opens a scope named <paramref name="name"/> inside the current one (a name starting with '/' is a path from the
    /// root: for values shared by several layers); disposing it returns to the enclosing scope.
    /// </summary>
    public IDisposable Scope(string name)
    {
        if (name.Length == 0 || name.EndsWith('/')) throw new ArgumentException($"scope name '{name}' is empty or ends with '/'", nameof(name));
        _scopes.Add(name[0] == '/' ? name : ScopePath + "/" + name);
        return new ScopeExit(this, _scopes.Count);
    }

    private sealed class ScopeExit(GraphBuilder g, int depth) : IDisposable
    {
        private bool _done;

        public void Dispose()
        {
            if (_done) return;
            if (g._scopes.Count != depth) throw new InvalidOperationException("graph scopes closed out of order");
            g._scopes.RemoveAt(depth - 1);
            _done = true;
        }
    }

    /// <summary>A unique node name for <paramref name="opType"/> in the current scope.</summary>
    private string NodeName(string opType)
    {
        string stem = ScopePath + "/" + opType, name = stem;
        for (int i = 1; !_nodeNames.Add(name); i++) name = $"{stem}_{i}";
        return name;
    }

    public void Input(string name, ElementType type, params object[] dims) => _graph.Input.Add(ValueInfo(name, type, dims));

    /// <summary>
    /// A graph input that need not be fed: an initializer of the same name holds its default (ONNX Runtime lets a run
    /// override such an initializer; a runtime that does not know the input never feeds it).
    /// </summary>
    public void InputWithDefault(string name, ElementType type, long[] dims, byte[] defaultValue)
    {
        if (!_names.Add(name)) throw new InvalidOperationException($"duplicate ONNX value name {name}");
        _graph.Input.Add(ValueInfo(name, type, dims.Cast<object>().ToArray()));
        var t = new TensorProto { Name = name, DataType = (int)type, RawData = ByteString.CopyFrom(defaultValue) };
        t.Dims.AddRange(dims);
        _graph.Initializer.Add(t);
    }

    public void Output(string name, ElementType type, params object[] dims) => _graph.Output.Add(ValueInfo(name, type, dims));

    /// <summary>Adds a node with one output; returns that output's name.</summary>
    public string Op(string opType, string[] inputs, IReadOnlyDictionary<string, object>? attributes = null, string? output = null, string domain = "")
        => OpMulti(opType, inputs, 1, attributes, output is null ? null : [output], domain)[0];

    /// <summary>
    /// Adds a node with several outputs: a null entry of <paramref name="outputs"/> (or no list) is named after the node,
    /// "" leaves an optional output unnamed.
    /// </summary>
    public string[] OpMulti(string opType, string[] inputs, int outputCount, IReadOnlyDictionary<string, object>? attributes = null,
        string?[]? outputs = null, string domain = "")
    {
        string nodeName = NodeName(opType);
        outputs ??= new string?[outputCount];
        var named = new string[outputs.Length];
        for (int i = 0; i < outputs.Length; i++)
        {
            named[i] = outputs[i] ?? $"{nodeName}_output_{i}";
            if (named[i].Length > 0 && !_names.Add(named[i]) && outputs[i] is null)
                throw new InvalidOperationException($"duplicate ONNX value name {named[i]}");
        }
        var node = new NodeProto { OpType = opType, Domain = domain, Name = nodeName };
        node.Input.AddRange(inputs);
        node.Output.AddRange(named);
        if (attributes is not null)
            foreach (var (key, value) in attributes) node.Attribute.Add(Attribute(key, value));
        _graph.Node.Add(node);
        return named;
    }

    /// <summary>An initializer whose bytes are in an external weight file.</summary>
    public string External(string name, ElementType type, long[] dims, WeightRegion region)
    {
        if (!_names.Add(name)) throw new InvalidOperationException($"duplicate ONNX value name {name}");
        var t = new TensorProto { Name = name, DataType = (int)type, DataLocation = TensorProto.Types.DataLocation.External };
        t.Dims.AddRange(dims);
        t.ExternalData.Add(new StringStringEntryProto { Key = "location", Value = region.File });
        t.ExternalData.Add(new StringStringEntryProto { Key = "offset", Value = region.Offset.ToString(System.Globalization.CultureInfo.InvariantCulture) });
        t.ExternalData.Add(new StringStringEntryProto { Key = "length", Value = region.Length.ToString(System.Globalization.CultureInfo.InvariantCulture) });
        _graph.Initializer.Add(t);
        return name;
    }

    /// <summary>An int64 constant of shape [] (a scalar).</summary>
    public string Int64Scalar(long value) => Constant(ElementType.Int64, [], BitConverter.GetBytes(value));

    /// <summary>An int64 constant of shape [n], even for n = 1 (shape arguments of Reshape, Unsqueeze...).</summary>
    public string Int64Vector(params long[] values) => Constant(ElementType.Int64, [values.Length], values.SelectMany(BitConverter.GetBytes).ToArray());

    public string FloatScalar(float value) => Constant(ElementType.Float, [], BitConverter.GetBytes(value));

    public string Floats(long[] dims, float[] values) => Constant(ElementType.Float, dims, values.SelectMany(BitConverter.GetBytes).ToArray());

    private string Constant(ElementType type, long[] dims, byte[] raw)
    {
        string key = $"{(int)type}|{string.Join(',', dims)}|{Convert.ToBase64String(raw)}";
        if (_constants.TryGetValue(key, out var existing)) return existing;
        string name = Name("const");
        var t = new TensorProto { Name = name, DataType = (int)type, RawData = ByteString.CopyFrom(raw) };
        t.Dims.AddRange(dims);
        _graph.Initializer.Add(t);
        _constants[key] = name;
        return name;
    }

    /// <summary>Serialises the model (graph only; weights are already in their files).</summary>
    public byte[] ToModelBytes(IReadOnlyDictionary<string, string> metadata, string docString)
    {
        var model = new ModelProto
        {
            IrVersion = 10,
            ProducerName = "behemoth",
            ProducerVersion = typeof(GraphBuilder).Assembly.GetName().Version?.ToString() ?? "0",
            DocString = docString,
            Graph = _graph,
        };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = 21 });
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = MicrosoftDomain, Version = 1 });
        foreach (var (k, v) in metadata) model.MetadataProps.Add(new StringStringEntryProto { Key = k, Value = v });
        return model.ToByteArray();
    }

    private static ValueInfoProto ValueInfo(string name, ElementType type, object[] dims)
    {
        var shape = new TensorShapeProto();
        foreach (var d in dims)
            shape.Dim.Add(d switch
            {
                string p => new TensorShapeProto.Types.Dimension { DimParam = p },
                int i => new TensorShapeProto.Types.Dimension { DimValue = i },
                long l => new TensorShapeProto.Types.Dimension { DimValue = l },
                _ => throw new ArgumentException($"dimension {d} of {name} is neither a name nor a number"),
            });
        return new ValueInfoProto
        {
            Name = name,
            Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)type, Shape = shape } },
        };
    }

    private static AttributeProto Attribute(string name, object value)
    {
        var a = new AttributeProto { Name = name };
        switch (value)
        {
            case int i: a.Type = AttributeProto.Types.AttributeType.Int; a.I = i; break;
            case long l: a.Type = AttributeProto.Types.AttributeType.Int; a.I = l; break;
            case bool b: a.Type = AttributeProto.Types.AttributeType.Int; a.I = b ? 1 : 0; break;
            case float f: a.Type = AttributeProto.Types.AttributeType.Float; a.F = f; break;
            case double d: a.Type = AttributeProto.Types.AttributeType.Float; a.F = (float)d; break;
            case string s: a.Type = AttributeProto.Types.AttributeType.String; a.S = ByteString.CopyFromUtf8(s); break;
            case long[] ls: a.Type = AttributeProto.Types.AttributeType.Ints; a.Ints.AddRange(ls); break;
            case int[] iss: a.Type = AttributeProto.Types.AttributeType.Ints; a.Ints.AddRange(iss.Select(x => (long)x)); break;
            case TensorProto t: a.Type = AttributeProto.Types.AttributeType.Tensor; a.T = t; break;
            default: throw new ArgumentException($"attribute {name}: unsupported value type {value.GetType().Name}");
        }
        return a;
    }
}
