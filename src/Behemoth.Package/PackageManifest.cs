using System.Text.Json.Serialization;

namespace Behemoth.Package;

/// <summary>
/// manifest.json, the index of a Behemoth package: what model it came from, how it is quantized, which experts each
/// layer holds (with their ids in the original checkpoint), the device profiles, and the size and SHA-256 of every
/// other file in the package.
/// </summary>
public sealed record PackageManifest
{
    public const string FormatName = "behemoth-package";
    public const int CurrentFormatVersion = 1;
    public const string FileName = "manifest.json";

    [JsonPropertyName("format")] public string Format { get; init; } = FormatName;
    [JsonPropertyName("format_version")] public int FormatVersion { get; init; } = CurrentFormatVersion;
    [JsonPropertyName("architecture")] public required string Architecture { get; init; }
    [JsonPropertyName("model_type")] public required string ModelType { get; init; }
    [JsonPropertyName("source")] public required string Source { get; init; }
    [JsonPropertyName("quantization")] public required QuantizationInfo Quantization { get; init; }
    [JsonPropertyName("moe_form")] public required string MoeForm { get; init; }
    [JsonPropertyName("model")] public required ModelShape Model { get; init; }
    [JsonPropertyName("tokenizer")] public TokenizerInfo? Tokenizer { get; init; }
    /// <summary>Per decoder layer, how the graph attends and so what its KV cache must keep (absent in older packages:
    /// then every layer keeps every key and appends).</summary>
    [JsonPropertyName("kv_cache")] public IReadOnlyList<LayerKvCache>? KvCache { get; init; }
    /// <summary>Per decoder layer: the original ids of the routed experts the package stores (empty for dense layers).</summary>
    [JsonPropertyName("experts")] public required IReadOnlyList<LayerExperts> Experts { get; init; }
    [JsonPropertyName("profiles")] public required IReadOnlyDictionary<string, ProfileInfo> Profiles { get; init; }
    [JsonPropertyName("files")] public required IReadOnlyDictionary<string, FileEntry> Files { get; init; }
}

public sealed record QuantizationInfo(
    [property: JsonPropertyName("weights")] string Weights,
    [property: JsonPropertyName("block_size")] int? BlockSize,
    [property: JsonPropertyName("full_precision")] IReadOnlyList<string> FullPrecision);

/// <summary>What a runtime needs to feed the graph: the decoder I/O dimensions and special tokens.</summary>
public sealed record ModelShape(
    [property: JsonPropertyName("vocab_size")] int VocabSize,
    [property: JsonPropertyName("hidden_size")] int HiddenSize,
    [property: JsonPropertyName("num_hidden_layers")] int NumLayers,
    [property: JsonPropertyName("num_attention_heads")] int NumHeads,
    [property: JsonPropertyName("num_key_value_heads")] int NumKvHeads,
    [property: JsonPropertyName("head_dim")] int HeadDim,
    [property: JsonPropertyName("context_length")] int ContextLength,
    [property: JsonPropertyName("bos_token_id")] int? BosTokenId,
    [property: JsonPropertyName("eos_token_ids")] IReadOnlyList<int> EosTokenIds);

public sealed record TokenizerInfo(
    [property: JsonPropertyName("kind")] string Kind,
    [property: JsonPropertyName("files")] IReadOnlyList<string> Files);

/// <summary>One layer's attention as the KV cache sees it.</summary>
/// <param name="Attention">"full", "sliding" (the last <paramref name="Window"/> positions) or "chunked" (positions in the
/// query's <paramref name="Window"/>-sized chunk): a sliding or chunked layer's cache may drop keys no later query sees.</param>
/// <param name="SharedBuffer">The layer runs on GroupQueryAttention, which appends new keys in place when its past and
/// present are one buffer of fixed capacity.</param>
public sealed record LayerKvCache(
    [property: JsonPropertyName("layer")] int Layer,
    [property: JsonPropertyName("attention")] string Attention,
    [property: JsonPropertyName("window")] int? Window,
    [property: JsonPropertyName("shared_buffer")] bool SharedBuffer);

public sealed record LayerExperts(
    [property: JsonPropertyName("layer")] int Layer,
    [property: JsonPropertyName("expert_ids")] IReadOnlyList<int> ExpertIds);

/// <summary>A device profile: its graph, and per MoE layer the original ids of the experts it keeps.</summary>
public sealed record ProfileInfo(
    [property: JsonPropertyName("graph")] string Graph,
    [property: JsonPropertyName("description")] string Description,
    [property: JsonPropertyName("experts")] IReadOnlyList<LayerExperts> Experts,
    [property: JsonPropertyName("files")] IReadOnlyList<string> Files)
{
    /// <summary>Bytes of the weight files this profile's graph references: what loading it reads (absent in older packages).</summary>
    [JsonPropertyName("weight_bytes")] public long? WeightBytes { get; init; }

    /// <summary>The [offset, length] ranges of the weight file this profile's graph references, merged and sorted.</summary>
    [JsonPropertyName("weight_regions")] public IReadOnlyList<long[]>? WeightRegions { get; init; }
}

public sealed record FileEntry(
    [property: JsonPropertyName("bytes")] long Bytes,
    [property: JsonPropertyName("sha256")] string Sha256)
{
    /// <summary>Weight files: the block size of <see cref="BlockSha256"/>.</summary>
    [JsonPropertyName("block_bytes")] public int? BlockBytes { get; init; }

    /// <summary>Weight files: SHA-256 of each block, so a profile can verify only the blocks it reads.</summary>
    [JsonPropertyName("block_sha256")] public IReadOnlyList<string>? BlockSha256 { get; init; }
}
