using System.Text.Json.Serialization;

namespace Behemoth.Package;

/// <summary>
/// manifest.json, the index of a Behemoth package: what model it came from, how it is quantized, which experts each
/// layer holds (with their ids in the original checkpoint), the device profiles, and the size and SHA-256 of every
/// other file in the package.
/// </summary>
public sealed record PackageManifest
{
    /// <summary>The value of <see cref="Format"/> in every Behemoth package; <see cref="PackageReader.ReadManifest(string)"/> refuses any other.</summary>
    public const string FormatName = "behemoth-package";
    /// <summary>The manifest format version this library writes and reads; <see cref="PackageReader.ReadManifest(string)"/> refuses any other.</summary>
    public const int CurrentFormatVersion = 1;
    /// <summary>The manifest's file name at the root of a package directory.</summary>
    public const string FileName = "manifest.json";

    /// <summary>Always <see cref="FormatName"/>: tells a Behemoth package from another directory with a manifest.json.</summary>
    [JsonPropertyName("format")] public string Format { get; init; } = FormatName;
    /// <summary>The manifest format version the package was written with (see <see cref="CurrentFormatVersion"/>).</summary>
    [JsonPropertyName("format_version")] public int FormatVersion { get; init; } = CurrentFormatVersion;
    /// <summary>The checkpoint's architecture class, as in its config.json (for example <c>MixtralForCausalLM</c>).</summary>
    [JsonPropertyName("architecture")] public required string Architecture { get; init; }
    /// <summary>The checkpoint's <c>model_type</c> (for example <c>mixtral</c>, <c>qwen3_moe</c>); picks the chat template and tokenizer quirks.</summary>
    [JsonPropertyName("model_type")] public required string ModelType { get; init; }
    /// <summary>Where the package was exported from (the checkpoint directory's name), for provenance only.</summary>
    [JsonPropertyName("source")] public required string Source { get; init; }
    /// <summary>How the weights are stored: the weight type, the block size and the tensors left in full precision.</summary>
    [JsonPropertyName("quantization")] public required QuantizationInfo Quantization { get; init; }
    /// <summary>How the graph computes the MoE layers: <c>fused</c> (ONNX Runtime's MoE / QMoE operators) or <c>decomposed</c> (plain operators); informational for the runtime.</summary>
    [JsonPropertyName("moe_form")] public required MoeForm MoeForm { get; init; }
    /// <summary>The decoder's dimensions and special tokens, what a runtime needs to feed the graph and size its KV cache.</summary>
    [JsonPropertyName("model")] public required ModelShape Model { get; init; }
    /// <summary>The tokenizer files the package carries and their kind; null when it carries none (the app brings its own).</summary>
    [JsonPropertyName("tokenizer")] public TokenizerInfo? Tokenizer { get; init; }
    /// <summary>Per decoder layer, how the graph attends and so what its KV cache must keep (absent in older packages:
    /// then every layer keeps every key and appends).</summary>
    [JsonPropertyName("kv_cache")] public IReadOnlyList<LayerKvCache>? KvCache { get; init; }
    /// <summary>Per decoder layer: the original ids of the routed experts the package stores (empty for dense layers).</summary>
    [JsonPropertyName("experts")] public required IReadOnlyList<LayerExperts> Experts { get; init; }
    /// <summary>The device profiles by name (for example <c>full</c>, <c>phone</c>): each a graph and the experts it keeps.</summary>
    [JsonPropertyName("profiles")] public required IReadOnlyDictionary<string, ProfileInfo> Profiles { get; init; }
    /// <summary>Every other file of the package by its path relative to the package directory, with its size and SHA-256.</summary>
    [JsonPropertyName("files")] public required IReadOnlyDictionary<string, FileEntry> Files { get; init; }
}

/// <summary>How a package's weights are stored.</summary>
/// <param name="Weights">The weight type of the quantized matrices: <c>fp32</c>, <c>fp16</c>, <c>int8</c> or <c>int4</c>.</param>
/// <param name="BlockSize">Elements per quantization block (block-wise int4 / int8, one scale per block); null for float weights.</param>
/// <param name="FullPrecision">What is kept unquantized, in words (for example <c>routers</c>, <c>norms</c>, <c>biases</c>; <c>everything</c> for fp32).</param>
public sealed record QuantizationInfo(
    [property: JsonPropertyName("weights")] WeightType Weights,
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

/// <summary>The tokenizer a package carries.</summary>
/// <param name="Kind">One of <see cref="TokenizerKinds"/>: how to read <paramref name="Files"/>.</param>
/// <param name="Files">The tokenizer files, relative to the package directory (the model file and its configs).</param>
public sealed record TokenizerInfo(
    [property: JsonPropertyName("kind")] string Kind,
    [property: JsonPropertyName("files")] IReadOnlyList<string> Files);

/// <summary>One layer's attention as the KV cache sees it.</summary>
/// <param name="Layer">The decoder layer index, from 0.</param>
/// <param name="Attention"><see cref="AttentionKind.Full"/>, <see cref="AttentionKind.Sliding"/> (the last <paramref name="Window"/> positions) or <see cref="AttentionKind.Chunked"/> (positions in the
/// query's <paramref name="Window"/>-sized chunk): a sliding or chunked layer's cache may drop keys no later query sees.</param>
/// <param name="Window">Positions a sliding or chunked layer attends to (the window or chunk size); null for full attention.</param>
/// <param name="SharedBuffer">The layer runs on GroupQueryAttention, which appends new keys in place when its past and
/// present are one buffer of fixed capacity.</param>
public sealed record LayerKvCache(
    [property: JsonPropertyName("layer")] int Layer,
    [property: JsonPropertyName("attention")] AttentionKind Attention,
    [property: JsonPropertyName("window")] int? Window,
    [property: JsonPropertyName("shared_buffer")] bool SharedBuffer);

/// <summary>The routed experts one decoder layer holds.</summary>
/// <param name="Layer">The decoder layer index, from 0.</param>
/// <param name="ExpertIds">The experts' ids in the original checkpoint, in the order the graph stores them (empty for a dense layer).</param>
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

/// <summary>The size and checksum the manifest records for one package file, against which a reader verifies it.</summary>
/// <param name="Bytes">The file's length in bytes.</param>
/// <param name="Sha256">SHA-256 of the whole file, lower-case hex.</param>
public sealed record FileEntry(
    [property: JsonPropertyName("bytes")] long Bytes,
    [property: JsonPropertyName("sha256")] string Sha256)
{
    /// <summary>Weight files: the block size of <see cref="BlockSha256"/>.</summary>
    [JsonPropertyName("block_bytes")] public int? BlockBytes { get; init; }

    /// <summary>Weight files: SHA-256 of each block, so a profile can verify only the blocks it reads.</summary>
    [JsonPropertyName("block_sha256")] public IReadOnlyList<string>? BlockSha256 { get; init; }
}
