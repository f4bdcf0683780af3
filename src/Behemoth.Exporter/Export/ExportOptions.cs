using Behemoth.Package;

namespace Behemoth.Exporter.Export;

// MoeForm and WeightType (the weight type) are the package contract's: Behemoth.Package.

public sealed record ExportOptions
{
    public WeightType Quant { get; init; } = WeightType.Fp32;
    public int BlockSize { get; init; } = 32;
    public MoeForm Moe { get; init; } = MoeForm.Fused;

    /// <summary>The longest sequence the RoPE tables cover (capped, so that long-context models do not carry huge tables).</summary>
    public int MaxContext { get; init; } = 8192;

    /// <summary>
    /// Writes a float32 graph whose weights are the dequantized values of <see cref="Quant"/>: what the quantized
    /// kernels should compute, exactly. Used to check the integer kernels and layouts, not for deployment.
    /// </summary>
    public bool SimulateQuantization { get; init; }

    /// <summary>Block size of the weight file's per-block SHA-256 (a profile verifies only the blocks it reads).</summary>
    public int WeightHashBlockBytes { get; init; } = Onnx.WeightFile.DefaultBlockSize;

    /// <summary>
    /// Exports only the first N decoder layers (null: all of them), for fast tests: the package is a model of N layers
    /// (manifest, genai_config, KV cache), the final norm and lm_head applied after layer N - 1. Must be 1 to num_hidden_layers.
    /// </summary>
    public int? Layers { get; init; }

    /// <summary>Device profiles written besides <c>full</c> (which keeps every expert).</summary>
    public IReadOnlyList<ProfileSpec> Profiles { get; init; } = [];

    public int Bits => Quant switch { WeightType.Int4 => 4, WeightType.Int8 => 8, _ => 0 };

    public string QuantName => Quant.ToManifestName();
}

/// <summary>
/// A device profile to write besides <c>full</c>: the routed experts it keeps, by original id, per MoE layer (a layer
/// left out keeps all its experts). Each profile gets its own graph; the weights of every expert are stored once.
/// </summary>
public sealed record ProfileSpec(string Name, string Description, IReadOnlyDictionary<int, int[]> Experts)
{
    /// <summary>Weights this profile changes (distillation): they are stored for this profile alone.</summary>
    public ProfileWeights? Weights { get; init; }
}

/// <summary>One expert in nn.Linear layout: gate and up [intermediate, hidden], down [hidden, intermediate].</summary>
public sealed record ExpertMatrices(float[] Gate, float[] Up, float[] Down);

/// <summary>A profile's own weights: replaced experts by (layer, original id), and per layer the router rows of its kept experts in ascending id order.</summary>
public sealed record ProfileWeights(IReadOnlyDictionary<(int Layer, int Expert), ExpertMatrices> Experts, IReadOnlyDictionary<int, float[]> Routers);
