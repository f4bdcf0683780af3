using System.Text.Json.Serialization;

namespace Behemoth.Package;

/// <summary>
/// How a decoder layer attends, and so what its KV cache must keep. Written to the manifest's <c>kv_cache</c> entries
/// as <c>full</c>, <c>sliding</c> or <c>chunked</c>; the exporter, the reference engine and the runtime share it.
/// </summary>
[JsonConverter(typeof(JsonStringEnumConverter<AttentionKind>))]
public enum AttentionKind
{
    /// <summary>Every earlier position (<c>full</c>).</summary>
    [JsonStringEnumMemberName("full")] Full,
    /// <summary>The last <c>window</c> positions, the query's own included (<c>sliding</c>; HF <c>sliding_attention</c>).</summary>
    [JsonStringEnumMemberName("sliding")] Sliding,
    /// <summary>Earlier positions in the same block of <c>window</c> positions (<c>chunked</c>; Llama 4 <c>chunked_attention</c>).</summary>
    [JsonStringEnumMemberName("chunked")] Chunked,
}

/// <summary>How a package's graphs compute the MoE layers; the manifest's <c>moe_form</c>, <c>fused</c> or <c>decomposed</c>.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<MoeForm>))]
public enum MoeForm
{
    /// <summary>ONNX Runtime's com.microsoft MoE / QMoE kernels (CPU, CUDA) (<c>fused</c>).</summary>
    [JsonStringEnumMemberName("fused")] Fused,
    /// <summary>TopK, Gather, per-expert MatMul and ScatterND: standard ops only, for providers without MoE kernels such as DirectML (<c>decomposed</c>).</summary>
    [JsonStringEnumMemberName("decomposed")] Decomposed,
}

/// <summary>The weight type of a package's quantized matrices; the manifest's <c>quantization.weights</c>.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<WeightType>))]
public enum WeightType
{
    /// <summary>float32 everywhere (<c>fp32</c>).</summary>
    [JsonStringEnumMemberName("fp32")] Fp32,
    /// <summary>float16 storage, widened to float32 when the session loads (<c>fp16</c>).</summary>
    [JsonStringEnumMemberName("fp16")] Fp16,
    /// <summary>8-bit block-wise symmetric integers with a float scale per block (<c>int8</c>; MatMulNBits / QMoE).</summary>
    [JsonStringEnumMemberName("int8")] Int8,
    /// <summary>4-bit block-wise symmetric integers with a float scale per block (<c>int4</c>; MatMulNBits / QMoE).</summary>
    [JsonStringEnumMemberName("int4")] Int4,
}

/// <summary>The manifest's spelling of the contract values (<c>full</c>, <c>decomposed</c>, <c>int4</c>, ...), for messages and reports.</summary>
public static class ContractKindNames
{
    /// <summary>The manifest's name of <paramref name="kind"/>: <c>full</c>, <c>sliding</c> or <c>chunked</c>.</summary>
    /// <param name="kind">The attention kind.</param>
    public static string ToManifestName(this AttentionKind kind) => kind switch
    {
        AttentionKind.Full => "full",
        AttentionKind.Sliding => "sliding",
        AttentionKind.Chunked => "chunked",
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, null),
    };

    /// <summary>The manifest's name of <paramref name="form"/>: <c>fused</c> or <c>decomposed</c>.</summary>
    /// <param name="form">The MoE form.</param>
    public static string ToManifestName(this MoeForm form) => form switch
    {
        MoeForm.Fused => "fused",
        MoeForm.Decomposed => "decomposed",
        _ => throw new ArgumentOutOfRangeException(nameof(form), form, null),
    };

    /// <summary>The manifest's name of <paramref name="type"/>: <c>fp32</c>, <c>fp16</c>, <c>int8</c> or <c>int4</c>.</summary>
    /// <param name="type">The weight type.</param>
    public static string ToManifestName(this WeightType type) => type switch
    {
        WeightType.Fp32 => "fp32",
        WeightType.Fp16 => "fp16",
        WeightType.Int8 => "int8",
        WeightType.Int4 => "int4",
        _ => throw new ArgumentOutOfRangeException(nameof(type), type, null),
    };
}
