namespace Behemoth.Formats.Safetensors;

/// <summary>Element types named by the safetensors format. Only F32, F16 and BF16 can be read as numbers here.</summary>
public enum SafetensorsDType
{
    Bool, U8, I8, F8_E4M3, F8_E5M2, U16, I16, F16, BF16, U32, I32, F32, U64, I64, F64,
}

/// <summary>Names and sizes of <see cref="SafetensorsDType"/> values, as the format spells them.</summary>
public static class SafetensorsDTypes
{
    private static readonly Dictionary<string, SafetensorsDType> ByName = new(StringComparer.Ordinal)
    {
        ["BOOL"] = SafetensorsDType.Bool, ["U8"] = SafetensorsDType.U8, ["I8"] = SafetensorsDType.I8,
        ["F8_E4M3"] = SafetensorsDType.F8_E4M3, ["F8_E5M2"] = SafetensorsDType.F8_E5M2,
        ["U16"] = SafetensorsDType.U16, ["I16"] = SafetensorsDType.I16, ["F16"] = SafetensorsDType.F16,
        ["BF16"] = SafetensorsDType.BF16, ["U32"] = SafetensorsDType.U32, ["I32"] = SafetensorsDType.I32,
        ["F32"] = SafetensorsDType.F32, ["U64"] = SafetensorsDType.U64, ["I64"] = SafetensorsDType.I64,
        ["F64"] = SafetensorsDType.F64,
    };

    /// <summary>The dtypes the numerical code can read (upcast to float32).</summary>
    public const string FloatingNames = "F32, F16, BF16";

    public static bool TryParse(string name, out SafetensorsDType dtype) => ByName.TryGetValue(name, out dtype);

    public static string Name(this SafetensorsDType dtype) => dtype switch
    {
        SafetensorsDType.Bool => "BOOL",
        _ => dtype.ToString(),
    };

    public static int SizeInBytes(this SafetensorsDType dtype) => dtype switch
    {
        SafetensorsDType.Bool or SafetensorsDType.U8 or SafetensorsDType.I8
            or SafetensorsDType.F8_E4M3 or SafetensorsDType.F8_E5M2 => 1,
        SafetensorsDType.U16 or SafetensorsDType.I16 or SafetensorsDType.F16 or SafetensorsDType.BF16 => 2,
        SafetensorsDType.U32 or SafetensorsDType.I32 or SafetensorsDType.F32 => 4,
        _ => 8,
    };

    public static bool IsReadableAsFloat(this SafetensorsDType dtype) =>
        dtype is SafetensorsDType.F32 or SafetensorsDType.F16 or SafetensorsDType.BF16;

    public static string AllNames => string.Join(", ", ByName.Keys);
}
